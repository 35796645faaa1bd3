package aggregate

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

const hexID = "4f3c1c5a0e8a2b6c9d7e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e"

// fakeProc builds procDir/PID/{fd/N -> socket:[INO], comm, cgroup}.
func fakeProc(t *testing.T, procs map[int]struct {
	comm, cgroup string
	inodes       []uint64
}) string {
	dir := t.TempDir()
	for pid, p := range procs {
		pd := filepath.Join(dir, strconv.Itoa(pid))
		if err := os.MkdirAll(filepath.Join(pd, "fd"), 0o755); err != nil {
			t.Fatal(err)
		}
		for i, ino := range p.inodes {
			if err := os.Symlink("socket:["+strconv.FormatUint(ino, 10)+"]", filepath.Join(pd, "fd", strconv.Itoa(i+3))); err != nil {
				t.Fatal(err)
			}
		}
		os.WriteFile(filepath.Join(pd, "comm"), []byte(p.comm+"\n"), 0o644)
		os.WriteFile(filepath.Join(pd, "cgroup"), []byte(p.cgroup), 0o644)
	}
	return dir
}

func TestOwners(t *testing.T) {
	type proc = struct {
		comm, cgroup string
		inodes       []uint64
	}
	dir := fakeProc(t, map[int]proc{
		10: {"nginx", "0::/system.slice/nginx.service\n", []uint64{100}},
		11: {"nginx", "0::/system.slice/nginx.service\n", []uint64{100, 101}},
		12: {"app", "0::/system.slice/docker-" + hexID + ".scope\n", []uint64{200}},
		13: {"other", "0::/\n", []uint64{999}},
	})
	got := Owners(dir, map[uint64]bool{100: true, 101: true, 200: true})
	if len(got[100]) != 2 || got[100][0].PID != 10 || got[100][1].PID != 11 || got[100][0].Cgroup != "/system.slice/nginx.service" || got[100][0].Unit != "nginx.service" {
		t.Errorf("owners of 100: %+v", got[100])
	}
	if o := got[200]; len(o) != 1 || o[0].Comm != "app" || o[0].ContainerID != hexID || o[0].Runtime != "docker" || o[0].Unit != "" {
		t.Errorf("owners of 200: %+v", o)
	}
	if _, ok := got[999]; ok {
		t.Error("unwanted inode indexed")
	}

	c := OwnerCache{ProcDir: dir, MaxAge: time.Minute}
	if o := c.Lookup(t0, map[uint64]bool{100: true}); len(o[100]) != 2 {
		t.Fatalf("cache lookup %+v", o)
	}
	// A new process for an indexed inode is not seen until MaxAge ...
	os.RemoveAll(filepath.Join(dir, "10"))
	if o := c.Lookup(t0.Add(time.Second), map[uint64]bool{100: true}); len(o[100]) != 2 {
		t.Errorf("cache re-read before MaxAge: %+v", o)
	}
	// ... but a new inode triggers a re-read, and so does age.
	if o := c.Lookup(t0.Add(2*time.Second), map[uint64]bool{100: true, 200: true}); len(o[100]) != 1 || len(o[200]) != 1 {
		t.Errorf("cache after a new inode: %+v", o)
	}
	os.RemoveAll(filepath.Join(dir, "11"))
	if o := c.Lookup(t0.Add(2*time.Minute), map[uint64]bool{100: true, 200: true}); len(o[100]) != 0 {
		t.Errorf("cache after MaxAge: %+v", o)
	}
}
