package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/synq-trace/synq/internal/identity"
	"github.com/synq-trace/synq/internal/kerneltest"
)

// A plain podman container (Debian's podman, storage of the test's own,
// cgroupfs manager, no network but its own loopback): synq names its
// listener by container id and runtime, and --container selects it. The CRI
// socket given does not exist: podman has none, the cgroup path is all synq
// needs, and it says nothing about the CRI.
func TestKernelWorkloadPodman(t *testing.T) {
	kerneltest.Root(t)
	podman := debianBinary(t, "podman", "podman")
	image := listenImage(t)
	dir, err := os.MkdirTemp("", "synq-podman-")
	if err != nil {
		t.Fatal(err)
	}
	global := []string{"--root", dir + "/root", "--runroot", dir + "/run", "--tmpdir", dir + "/tmp",
		"--cgroup-manager", "cgroupfs", "--events-backend", "none"}
	pm := func(args ...string) (string, error) {
		out, err := exec.Command(podman, append(global, args...)...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	t.Cleanup(func() {
		pm("rm", "--force", "--all", "--time", "0")
		removeCgroupTree("libpod_parent", "libpod_parent") // podman's cgroupfs parent: the test's only user here
		pm("system", "reset", "--force")
		unmountUnder(dir)
		os.RemoveAll(dir)
	})
	if out, err := pm("load", "-i", image); err != nil {
		t.Skipf("podman cannot load an image here: %v\n%s", err, out)
	}
	// Without CAP_SYS_RESOURCE (as on this project's VMs) no limit can be
	// raised above synq's own: podman's defaults would be.
	var nofile, nproc unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_NOFILE, &nofile)
	unix.Getrlimit(unix.RLIMIT_NPROC, &nproc)
	out, err := pm("run", "-d", "--network", "none",
		"--ulimit", fmt.Sprintf("nofile=%d:%d", nofile.Cur, nofile.Max), "--ulimit", fmt.Sprintf("nproc=%d:%d", min(nproc.Cur, 1024), min(nproc.Max, 1024)),
		"--name", fmt.Sprintf("synq-test-%d", os.Getpid()),
		"synq.test/listen:1", "127.0.0.1:8080")
	if err != nil {
		t.Skipf("podman cannot run a container here: %v\n%s", err, out)
	}
	lines := strings.Split(out, "\n")
	id := lines[len(lines)-1]
	if identity.FromCgroup("/libpod-"+id).ContainerID != id {
		t.Fatalf("podman run printed %q, not a container id", out)
	}

	want := identity.Identity{ContainerID: id, Runtime: "podman"}
	absent := "/nonexistent/synq-cri.sock"
	var o []ownerOut
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if code, _, _ := runCLI("listeners", "--container", id[:12], "--runtime-endpoint", absent); code == 0 {
			for _, os := range listenerOwnersOf(t, "listeners", "--container", id[:12], "--runtime-endpoint", absent, "-o", "json") {
				o = append(o, os...)
			}
			break
		}
	}
	if len(o) == 0 {
		_, stdout, _ := runCLI("listeners")
		pid, _ := pm("inspect", "--format", "{{.State.Pid}}", id)
		cg, _ := os.ReadFile("/proc/" + pid + "/cgroup")
		t.Fatalf("no listener of container %s (pid %s, cgroup %q):\n%s", id[:12], pid, cg, stdout)
	}
	if len(o) != 1 || o[0].Comm != "listen" || o[0].Identity != want {
		t.Fatalf("owners of the podman container's listener: %+v, want one listen process with %+v", o, want)
	}
	t.Logf("cgroup %s", o[0].Cgroup)
	code, stdout, stderr := runCLI("listeners", "--container", id[:12], "--runtime-endpoint", absent)
	if code != 0 || !strings.Contains(stdout, "127.0.0.1:8080") || !strings.Contains(stdout, "podman:"+id[:12]) || stderr != "" {
		t.Errorf("listeners --container %s: exit %d, stderr %q:\n%s", id[:12], code, stderr, stdout)
	}
}
