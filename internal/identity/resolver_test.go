package identity_test

import (
	"bytes"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/synq-trace/synq/internal/identity"
	"github.com/synq-trace/synq/internal/identity/critest"
)

const (
	idWeb   = "1111111111111111111111111111111111111111111111111111111111111111"
	idDB    = "2222222222222222222222222222222222222222222222222222222222222222"
	idPause = "3333333333333333333333333333333333333333333333333333333333333333"
	idOther = "4444444444444444444444444444444444444444444444444444444444444444"
	podUID  = "0c3f5e2a-9b1d-4e7f-8a6c-2d4b6f8a0c1e"
)

func TestResolverNamesContainers(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "cri.sock")
	srv, err := critest.Listen(sock, []critest.Container{
		{ID: idWeb, Name: "nginx", SandboxID: idPause, Pod: "web-0", Namespace: "shop", PodUID: podUID},
		{ID: idDB, Name: "pg", SandboxID: idPause, Pod: "web-0", Namespace: "shop", PodUID: podUID},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var warn bytes.Buffer
	r := identity.NewResolver(identity.ResolverConfig{Endpoint: "unix://" + sock, Warn: &warn, MinRefresh: time.Hour})
	defer r.Close()
	if s := r.Status(); s.Err != nil || s.Runtime != "" {
		t.Errorf("status before any lookup: %v", s)
	}

	// A plain unit needs no runtime: nothing is dialled.
	unit := identity.FromCgroup("/system.slice/nginx.service")
	r.Fill(&unit)
	if srv.ListCalls.Load() != 0 || unit != (identity.Identity{Unit: "nginx.service"}) {
		t.Errorf("unit %+v, %d listings", unit, srv.ListCalls.Load())
	}

	web := identity.FromCgroup("/kubepods/burstable/pod" + podUID + "/" + idWeb)
	r.Fill(&web)
	want := identity.Identity{ContainerID: idWeb, Runtime: "containerd", PodUID: podUID, Pod: "web-0", Namespace: "shop", Container: "nginx"}
	if web != want || web.Display() != "shop/web-0/nginx" {
		t.Errorf("web %+v (%q), want %+v", web, web.Display(), want)
	}
	db := identity.FromCgroup("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + strings.ReplaceAll(podUID, "-", "_") +
		".slice/cri-containerd-" + idDB + ".scope")
	r.Fill(&db)
	pause := identity.Identity{ContainerID: idPause, PodUID: podUID}
	r.Fill(&pause)
	if warn.Len() != 0 {
		t.Errorf("said %q with every id known at the first listing", warn.String())
	}
	if db.Display() != "shop/web-0/pg" || pause.Display() != "shop/web-0" {
		t.Errorf("db %+v, pause %+v", db, pause)
	}
	if n := srv.ListCalls.Load(); n != 1 {
		t.Errorf("%d listings for three known ids, want 1", n)
	}

	// An id the runtime does not know: one more listing (none until
	// MinRefresh), one line, the cgroup identity kept.
	const uidOther = "99999999-9999-9999-9999-999999999999"
	other := identity.Identity{ContainerID: idOther, Runtime: "containerd", PodUID: uidOther}
	r.Fill(&other)
	again := other
	r.Fill(&again)
	if n := srv.ListCalls.Load(); n != 1 {
		t.Errorf("%d listings: an unknown id within MinRefresh listed again", n)
	}
	// A docker container beside the kubelet's containerd: not its to know.
	dock := identity.Identity{ContainerID: idOther, Runtime: "docker"}
	r.Fill(&dock)
	if dock != (identity.Identity{ContainerID: idOther, Runtime: "docker"}) {
		t.Errorf("docker container changed: %+v", dock)
	}
	if other != (identity.Identity{ContainerID: idOther, Runtime: "containerd", PodUID: uidOther}) {
		t.Errorf("unknown container changed: %+v", other)
	}
	// A container in no pod (nerdctl, plain containerd): not the CRI's,
	// not asked about, nothing said.
	plain := identity.Identity{ContainerID: idOther, Runtime: "containerd"}
	r.Fill(&plain)
	if plain != (identity.Identity{ContainerID: idOther, Runtime: "containerd"}) {
		t.Errorf("container outside a pod changed: %+v", plain)
	}
	if s := r.Status(); s.Err != nil || s.Runtime != "containerd" || s.Containers != 3 {
		t.Errorf("status %v", s)
	}
	if got := strings.Count(warn.String(), "\n"); got != 1 || !strings.Contains(warn.String(), "does not know container 444444444444") {
		t.Errorf("warnings %q, want one line naming the unknown container", warn.String())
	}

	warn.Reset()
	r2 := identity.NewResolver(identity.ResolverConfig{Endpoint: sock, Warn: &warn, MinRefresh: time.Nanosecond})
	defer r2.Close()
	for range 3 {
		o := identity.Identity{ContainerID: idOther, PodUID: uidOther}
		r2.Fill(&o)
	}
	// Outside a pod: no listing at all, whatever MinRefresh.
	for range 3 {
		o := identity.Identity{ContainerID: idOther, Runtime: "containerd"}
		r2.Fill(&o)
	}
	if n := srv.ListCalls.Load(); n != 4 {
		t.Errorf("%d listings, want 1 + 3 (MinRefresh 1ns, unknown id)", n)
	}
	if got := strings.Count(warn.String(), "\n"); got != 1 || !strings.Contains(warn.String(), "does not know container 444444444444") {
		t.Errorf("warnings %q, want one line naming the container", warn.String())
	}
}

// Without a runtime, a refusing one or a hung one: the cgroup identity, one
// line, a status saying why, and no wait beyond the timeout.
func TestResolverDegrades(t *testing.T) {
	dir := t.TempDir()
	refusing := filepath.Join(dir, "refusing.sock")
	l, err := net.Listen("unix", refusing)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close() // the socket file stays, nobody listens: ECONNREFUSED
	hung := filepath.Join(dir, "hung.sock")
	hl, err := net.Listen("unix", hung) // never accepts: connects, no HTTP/2 answer
	if err != nil {
		t.Fatal(err)
	}
	defer hl.Close()

	for _, c := range []struct{ name, endpoint, says string }{
		{"absent", filepath.Join(dir, "none.sock"), "no such file"},
		{"refusing", "unix://" + refusing, "connection refused"},
		{"hung", hung, "DeadlineExceeded"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var warn bytes.Buffer
			r := identity.NewResolver(identity.ResolverConfig{Endpoint: c.endpoint, Warn: &warn,
				Timeout: 300 * time.Millisecond, MinRefresh: time.Nanosecond})
			defer r.Close()
			for range 2 {
				path := "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" +
					strings.ReplaceAll(uidOtherPod, "-", "_") + ".slice/cri-containerd-" + idWeb + ".scope"
				id := identity.FromCgroup(path)
				r.Fill(&id)
				if id != (identity.Identity{ContainerID: idWeb, Runtime: "containerd", PodUID: uidOtherPod}) {
					t.Errorf("identity %+v, want the cgroup's", id)
				}
			}
			s := r.Status()
			if s.Err == nil || !strings.Contains(s.String(), "degraded") {
				t.Errorf("status %v", s)
			}
			lines := strings.Split(strings.TrimSpace(warn.String()), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], c.says) || !strings.Contains(lines[0], "cgroup paths alone") {
				t.Errorf("said %q, want one line with %q", warn.String(), c.says)
			}
		})
	}
}

// uidOtherPod is a pod UID no test runtime knows.
const uidOtherPod = "12345678-90ab-cdef-1234-567890abcdef"

func TestCheckEndpoint(t *testing.T) {
	for e, ok := range map[string]bool{"/run/x.sock": true, "unix:///run/x.sock": true, "tcp://1.2.3.4:1": false, "": false, "unix://": false} {
		if err := identity.CheckEndpoint(e); (err == nil) != ok {
			t.Errorf("%q: %v", e, err)
		}
	}
}

// Podman and LXC never answer the CRI: their containers are not looked up,
// and nothing is said about a runtime socket.
func TestResolverSkipsNonCRIRuntimes(t *testing.T) {
	var warn bytes.Buffer
	r := identity.NewResolver(identity.ResolverConfig{Endpoint: filepath.Join(t.TempDir(), "none.sock"), Warn: &warn})
	defer r.Close()
	for _, cg := range []string{"/machine.slice/libpod-" + idWeb + ".scope", "/lxc.payload.web1"} {
		id := identity.FromCgroup(cg)
		want := id
		r.Fill(&id)
		if id != want {
			t.Errorf("%s: %+v, want %+v", cg, id, want)
		}
	}
	if s := r.Status(); warn.Len() != 0 || s.Err != nil || s.Endpoint != "" {
		t.Errorf("said %q, status %v: the socket was tried", warn.String(), s)
	}
}
