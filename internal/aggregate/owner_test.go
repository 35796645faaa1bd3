package aggregate

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

const hexID = "4f3c1c5a0e8a2b6c9d7e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e"

func TestParseCgroup(t *testing.T) {
	for _, c := range []struct{ name, file, want string }{
		{"v2 unified", "0::/system.slice/nginx.service\n", "/system.slice/nginx.service"},
		{"v2 root", "0::/\n", "/"},
		{"hybrid, v2 root, v1 paths elsewhere (this CI machine)",
			"9:name=systemd:/\n4:memory:/process_api/4a6c906dbf7ccebaa5e67f4373602822\n0::/\n", "/"},
		{"hybrid, v2 set", "9:name=systemd:/user.slice\n0::/synq-test\n", "/synq-test"},
		{"v1 only, systemd", "12:pids:/system.slice/sshd.service\n1:name=systemd:/system.slice/sshd.service\n", "/system.slice/sshd.service"},
		{"v1 docker cgroupfs, systemd root", "11:memory:/docker/" + hexID + "\n1:name=systemd:/\n", "/docker/" + hexID},
		{"garbage", "nonsense\n\n", ""},
		{"empty", "", ""},
	} {
		if got := ParseCgroup([]byte(c.file)); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

func TestContainerID(t *testing.T) {
	for path, want := range map[string]string{
		"/system.slice/docker-" + hexID + ".scope": hexID,
		"/docker/" + hexID:                         hexID,
		"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234.slice/cri-containerd-" + hexID + ".scope": hexID,
		"/kubepods/burstable/pod5678/" + hexID:                hexID,
		"/machine.slice/libpod-" + hexID + ".scope/container": hexID,
		"/machine.slice/libpod-conmon-" + hexID + ".scope":    "",
		"/kubepods.slice/crio-" + hexID + ".scope":            hexID,
		"/lxc.payload.web1":                                   "web1",
		"/system.slice/nginx.service":                         "",
		"/process_api/4a6c906dbf7ccebaa5e67f4373602822":       "",
		"/":                           "",
		"/docker/" + hexID[:63] + "g": "",
		"/user.slice/user-1000.slice/session-2.scope":           "",
		"/system.slice/docker-" + hexID + ".scope/init.scope":   hexID,
		"/synq-test-1/docker-" + hexID + ".scope":               hexID,
		"/kubepods/besteffort/pod1/" + hexID + "/nested/" + "x": hexID,
	} {
		if got := ContainerID(path); got != want {
			t.Errorf("ContainerID(%q) = %q, want %q", path, got, want)
		}
	}
}

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
	if len(got[100]) != 2 || got[100][0].PID != 10 || got[100][1].PID != 11 || got[100][0].Cgroup != "/system.slice/nginx.service" {
		t.Errorf("owners of 100: %+v", got[100])
	}
	if o := got[200]; len(o) != 1 || o[0].Comm != "app" || o[0].ContainerID != hexID {
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
