package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/synq-trace/synq/internal/identity"
	"github.com/synq-trace/synq/internal/kerneltest"
)

// privateContainerd runs Debian's containerd with its CRI plugin on a root,
// state and socket of the test's own (never the system's), and returns its
// socket; it is stopped and its directories removed when the test ends.
func privateContainerd(t *testing.T) string {
	bin := debianBinary(t, "containerd", "containerd")
	debianBinary(t, "runc", "runc")
	dir, err := os.MkdirTemp("", "synq-ctd-")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "ctd.sock")
	conf := fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
[grpc]
  address = %[3]q
[ttrpc]
  address = %[4]q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "synq.test/listen:1"
  disable_apparmor = true
  # CAP_SYS_RESOURCE may be missing (as on this project's VMs): no OOM score
  # below synq's own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      SystemdCgroup = false
      Root = %[6]q
  [plugins."io.containerd.grpc.v1.cri".cni]
    conf_dir = %[5]q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock, sock+".ttrpc", filepath.Join(dir, "cni"), filepath.Join(dir, "runc"))
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", filepath.Join(dir, "config.toml"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		killShims(sock)
		log.Close()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "log"))
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			t.Logf("containerd's log, last lines:\n%s", strings.Join(lines[max(0, len(lines)-40):], "\n"))
		}
		unmountUnder(dir)
		os.RemoveAll(dir)
		// containerd 1.6 puts its shims' sockets in /run/containerd/s
		// whatever its state dir: remove what it made, if empty.
		os.Remove("/run/containerd/s")
		os.Remove("/run/containerd")
	})
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "log"))
			t.Skipf("containerd did not serve %s in 15s:\n%s", sock, b)
		}
	}
	return sock
}

// killShims kills the runtime shims serving sock that outlived containerd
// (containerd 1.6 leaves them to run their containers).
func killShims(sock string) {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if strings.HasPrefix(filepath.Base(args[0]), "containerd-shim") && slices.Contains(args, sock) {
			if pid, err := strconv.Atoi(e.Name()); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
}

// removeCgroupTree removes rel and what is below it in every cgroup
// hierarchy (the kubelet removes a pod's cgroup, not the runtime), then its
// parents up to top where they are empty.
func removeCgroupTree(rel, top string) {
	mounts, _ := filepath.Glob("/sys/fs/cgroup/*")
	mounts = append(mounts, "/sys/fs/cgroup")
	// A monitor (conmon) may still be exiting: a few tries.
	for try := 0; try < 20 && removeCgroupTreeIn(mounts, rel, top); try++ {
		time.Sleep(100 * time.Millisecond)
	}
}

// removeCgroupTreeIn is one try of removeCgroupTree; it says whether rel is
// still there somewhere.
func removeCgroupTreeIn(mounts []string, rel, top string) (left bool) {
	for _, m := range mounts {
		root := filepath.Join(m, rel)
		var dirs []string
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			os.Remove(dirs[i])
		}
		for d := filepath.Dir(root); len(d) >= len(filepath.Join(m, top)); d = filepath.Dir(d) {
			os.Remove(d) // fails while another test's pods are there
		}
		if _, err := os.Stat(root); err == nil {
			left = true
		}
	}
	return left
}

// unmountUnder unmounts what containerd left mounted under dir (rootfs of
// containers it could not clean up), deepest first.
func unmountUnder(dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var mounts []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			mounts = append(mounts, f[4])
		}
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		syscall.Unmount(mounts[i], syscall.MNT_DETACH)
	}
}

// listenImage builds the static listen binary (testdata/listen) into a
// one-layer image, synq.test/listen:1, as a docker-archive tarball.
func listenImage(t *testing.T) string {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go toolchain to build the image's binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "listen")
	build := exec.Command(goBin, "build", "-o", bin, "./testdata/listen")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build testdata/listen: %v\n%s", err, out)
	}
	exe, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	tw.WriteHeader(&tar.Header{Name: "listen", Mode: 0o755, Size: int64(len(exe)), Typeflag: tar.TypeReg})
	tw.Write(exe)
	tw.Close()
	config, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"config": map[string]any{"Entrypoint": []string{"/listen"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{fmt.Sprintf("sha256:%x", sha256.Sum256(layer.Bytes()))}},
	})
	manifest, _ := json.Marshal([]map[string]any{{"Config": "config.json", "RepoTags": []string{"synq.test/listen:1"}, "Layers": []string{"layer.tar"}}})
	var image bytes.Buffer
	iw := tar.NewWriter(&image)
	for _, f := range []struct {
		name string
		b    []byte
	}{{"layer.tar", layer.Bytes()}, {"config.json", config}, {"manifest.json", manifest}} {
		iw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.b)), Typeflag: tar.TypeReg})
		iw.Write(f.b)
	}
	iw.Close()
	tarPath := filepath.Join(dir, "image.tar")
	if err := os.WriteFile(tarPath, image.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return tarPath
}

// importListenImage imports the listen image with ctr into the CRI
// plugin's namespace.
func importListenImage(t *testing.T, sock string) {
	ctr, err := exec.LookPath("ctr")
	if err != nil {
		t.Skip("ctr not installed (Debian's containerd package has it)")
	}
	if out, err := exec.Command(ctr, "--address", sock, "--namespace", "k8s.io", "images", "import", listenImage(t)).CombinedOutput(); err != nil {
		t.Fatalf("ctr images import: %v\n%s", err, out)
	}
}

// A pod run by a real containerd through its CRI plugin, as the kubelet
// runs one (cgroupfs driver, kubepods parent, the kubelet's labels): synq
// names its listener's pod, Kubernetes namespace and container from the
// runtime, and --pod selects it.
func TestKernelWorkloadContainerd(t *testing.T) {
	kerneltest.Root(t)
	sock := privateContainerd(t)
	importListenImage(t, sock)
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() }) // after the pod's removal (cleanups run last first)
	rt := cri.NewRuntimeServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	uid, name, ns := podUID(21), fmt.Sprintf("web-%d", os.Getpid()), "shop"
	// The pod shares the host's network namespace (no CNI plugin here):
	// the container listens on loopback only.
	pod := &cri.PodSandboxConfig{
		Metadata:     &cri.PodSandboxMetadata{Name: name, Uid: uid, Namespace: ns},
		LogDirectory: t.TempDir(),
		Labels:       map[string]string{"io.kubernetes.pod.name": name, "io.kubernetes.pod.namespace": ns, "io.kubernetes.pod.uid": uid},
		Linux: &cri.LinuxPodSandboxConfig{CgroupParent: "/kubepods/besteffort/pod" + uid,
			SecurityContext: &cri.LinuxSandboxSecurityContext{NamespaceOptions: &cri.NamespaceOption{Network: cri.NamespaceMode_NODE}}},
	}
	t.Cleanup(func() { removeCgroupTree("kubepods/besteffort/pod"+uid, "kubepods") })
	sb, err := rt.RunPodSandbox(ctx, &cri.RunPodSandboxRequest{Config: pod})
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		rt.StopPodSandbox(ctx, &cri.StopPodSandboxRequest{PodSandboxId: sb.PodSandboxId})
		rt.RemovePodSandbox(ctx, &cri.RemovePodSandboxRequest{PodSandboxId: sb.PodSandboxId})
	})
	port := freeLoopbackPort(t)
	c, err := rt.CreateContainer(ctx, &cri.CreateContainerRequest{PodSandboxId: sb.PodSandboxId, SandboxConfig: pod,
		Config: &cri.ContainerConfig{
			Metadata: &cri.ContainerMetadata{Name: "nginx"},
			Image:    &cri.ImageSpec{Image: "synq.test/listen:1"},
			Args:     []string{fmt.Sprintf("127.0.0.1:%d", port)},
			LogPath:  "nginx.log",
			Labels: map[string]string{"io.kubernetes.pod.name": name, "io.kubernetes.pod.namespace": ns,
				"io.kubernetes.pod.uid": uid, "io.kubernetes.container.name": "nginx"},
		}})
	if err != nil {
		t.Fatalf("CreateContainer: %v", err)
	}
	if _, err := rt.StartContainer(ctx, &cri.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
		t.Fatalf("StartContainer: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		rt.StopContainer(ctx, &cri.StopContainerRequest{ContainerId: c.ContainerId, Timeout: 5})
		rt.RemoveContainer(ctx, &cri.RemoveContainerRequest{ContainerId: c.ContainerId})
	})

	want := identity.Identity{ContainerID: c.ContainerId, Runtime: "containerd", PodUID: uid, Pod: name, Namespace: ns, Container: "nginx"}
	var owners map[uint16][]ownerOut
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		owners = listenerOwnersOf(t, "listeners", "--port", fmt.Sprint(port), "--runtime-endpoint", sock, "-o", "json")
		if len(owners[port]) > 0 || time.Now().After(deadline) {
			break
		}
	}
	o := owners[port]
	if len(o) != 1 || o[0].Comm != "listen" || o[0].Identity != want {
		t.Fatalf("owners of the pod's listener :%d: %+v, want one listen process with %+v", port, o, want)
	}
	t.Logf("cgroup %s", o[0].Cgroup)

	// --pod selects it, at once among every listener of the host.
	sel := listenerOwnersOf(t, "listeners", "--pod", name, "--runtime-endpoint", "unix://"+sock, "-o", "json")
	if len(sel) != 1 || len(sel[port]) != 1 {
		t.Errorf("--pod %s: %v, want only :%d", name, sel, port)
	}
}

// ownerOut is an owner as listeners prints it.
type ownerOut struct {
	PID    int    `json:"pid"`
	Comm   string `json:"comm"`
	Cgroup string `json:"cgroup"`
	identity.Identity
}

func listenerOwnersOf(t *testing.T, args ...string) map[uint16][]ownerOut {
	t.Helper()
	out := map[uint16][]ownerOut{}
	for _, r := range listenersJSON(t, args...) {
		b, _ := json.Marshal(r)
		var row struct {
			Port   uint16     `json:"port"`
			Owners []ownerOut `json:"owners"`
		}
		if err := json.Unmarshal(b, &row); err != nil {
			t.Fatal(err)
		}
		out[row.Port] = append(out[row.Port], row.Owners...)
	}
	return out
}

// freeLoopbackPort is a port free on 127.0.0.1 in synq's netns right now.
func freeLoopbackPort(t *testing.T) uint16 {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}
