package main

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/synq-trace/synq/internal/netlab"
)

// workloadListener is a listener held only by a `sleep` placed in cgroups
// the test made, named as systemd, the kubelet or a container runtime names
// them.
type workloadListener struct {
	port uint16
	pid  int
}

// cgroupMounts are the cgroup v2 hierarchy's mount point and the
// name=systemd v1 hierarchy's ("" where not mounted).
func cgroupMounts(t *testing.T) (v2, systemd string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS... - FSTYPE SOURCE SUPER
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fs := strings.Fields(pre)
		if !ok || len(fs) < 5 || fs[3] != "/" {
			continue
		}
		switch post := strings.Fields(post); {
		case len(post) > 0 && post[0] == "cgroup2" && v2 == "":
			v2 = fs[4]
		case len(post) > 2 && post[0] == "cgroup" && strings.Contains(post[2], "name=systemd") && systemd == "":
			systemd = fs[4]
		}
	}
	return v2, systemd
}

// makeCgroup creates mount/rel (and its parents), removed when the test
// ends, innermost first.
func makeCgroup(t *testing.T, mount, rel string) string {
	t.Helper()
	dir := filepath.Join(mount, rel)
	var made []string
	for d := dir; d != mount; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		}
		made = append(made, d)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Skipf("cannot create cgroup %s: %v", dir, err)
	}
	t.Cleanup(func() {
		for _, d := range made {
			os.Remove(d) // its processes were killed first (cleanups run last-in first-out)
		}
	})
	return dir
}

// listenInCgroups opens a listener on 127.0.0.1 in ns, hands it to a sleep
// moved into each cgroup directory given, and closes the test's copy.
func listenInCgroups(t *testing.T, ns *netlab.Netns, cgroups ...string) workloadListener {
	t.Helper()
	fd, err := ns.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "listener")
	defer f.Close()
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 64); err != nil { // the sleeps never accept: room for every run's connection
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sleep", "300")
	cmd.ExtraFiles = []*os.File{f}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	for _, cg := range cgroups {
		if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
			t.Fatalf("move sleep into %s: %v", cg, err)
		}
	}
	return workloadListener{port: uint16(sa.(*unix.SockaddrInet4).Port), pid: cmd.Process.Pid}
}

// hexID is a container id of the test's own: 64 hex, as random as a
// runtime's, distinct per n and per test process.
func hexID(n int) string {
	return fmt.Sprintf("%x", sha256.Sum256(fmt.Appendf(nil, "synq-test %d %d", os.Getpid(), n)))
}

// podUID is a pod UID of the test's own.
func podUID(n int) string {
	return fmt.Sprintf("%08x-0000-4000-8000-%012x", os.Getpid(), n)
}
