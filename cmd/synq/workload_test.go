package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/synq-trace/synq/internal/aggregate"
	"github.com/synq-trace/synq/internal/identity"
	"github.com/synq-trace/synq/internal/identity/critest"
	"github.com/synq-trace/synq/internal/kerneltest"
	"github.com/synq-trace/synq/internal/netlab"
	"github.com/synq-trace/synq/internal/render"
)

// workloads is the test's set of listeners, each in cgroups named as its
// kind of workload names them, and the CRI runtime that knows the pods.
type workloads struct {
	netns        string
	ns           *netlab.Netns
	sock         string // the CRI runtime's socket
	unit         string
	svc, web, db workloadListener
	dock         workloadListener // port 0 without a name=systemd hierarchy
	want         map[uint16]identity.Identity
	display      map[uint16]string
}

// startWorkloads makes them: a systemd service (v2,
// system.slice/synqtest-PID.service), a pod's container with the systemd
// driver (v2, kubepods.slice/.../cri-containerd-ID.scope), a pod's container
// with the cgroupfs driver (v2, kubepods/besteffort/podUID/ID), and a docker
// container in the name=systemd v1 hierarchy only (hybrid host); the CRI
// runtime lists the two pods' containers.
func startWorkloads(t *testing.T) *workloads {
	v2, sd := cgroupMounts(t)
	if v2 == "" {
		t.Skip("no cgroup v2 hierarchy mounted")
	}
	pid := os.Getpid()
	w := &workloads{netns: fmt.Sprintf("synq-wl-%d", pid), unit: fmt.Sprintf("synqtest-%d.service", pid)}
	ns := kerneltest.NamedNetns(t, w.netns)
	w.ns = ns
	idWeb, idDB, idDock, uidWeb, uidDB := hexID(1), hexID(2), hexID(3), podUID(1), podUID(2)
	w.svc = listenInCgroups(t, ns, makeCgroup(t, v2, "system.slice/"+w.unit))
	w.web = listenInCgroups(t, ns, makeCgroup(t, v2, "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"+
		strings.ReplaceAll(uidWeb, "-", "_")+".slice/cri-containerd-"+idWeb+".scope"))
	w.db = listenInCgroups(t, ns, makeCgroup(t, v2, "kubepods/besteffort/pod"+uidDB+"/"+idDB))
	w.want = map[uint16]identity.Identity{
		w.svc.port: {Unit: w.unit},
		w.web.port: {ContainerID: idWeb, Runtime: "containerd", PodUID: uidWeb, Pod: "web-0", Namespace: "shop", Container: "nginx"},
		w.db.port:  {ContainerID: idDB, Runtime: "containerd", PodUID: uidDB, Pod: "db-0", Namespace: "data", Container: "postgres"},
	}
	w.display = map[uint16]string{w.svc.port: w.unit, w.web.port: "shop/web-0/nginx", w.db.port: "data/db-0/postgres"}
	if sd != "" {
		w.dock = listenInCgroups(t, ns, makeCgroup(t, sd, fmt.Sprintf("synq-wl-%d/docker-%s.scope", pid, idDock)))
		w.want[w.dock.port] = identity.Identity{ContainerID: idDock, Runtime: "docker"}
		w.display[w.dock.port] = "docker:" + idDock[:12]
	}
	w.sock = filepath.Join(t.TempDir(), "cri.sock")
	srv, err := critest.Listen(w.sock, []critest.Container{
		{ID: idWeb, Name: "nginx", SandboxID: hexID(11), Pod: "web-0", Namespace: "shop", PodUID: uidWeb},
		{ID: idDB, Name: "postgres", SandboxID: hexID(12), Pod: "db-0", Namespace: "data", PodUID: uidDB},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return w
}

// ports are the listeners' ports, sorted.
func (w *workloads) ports() []uint16 {
	var ps []uint16
	for p := range w.want {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return ps
}

// checkOwners checks that each port's owner is its sleep, with its
// identity; want overrides w.want (degraded runs).
func (w *workloads) checkOwners(t *testing.T, what string, owners map[uint16][]aggregate.Owner, want map[uint16]identity.Identity) {
	t.Helper()
	for _, p := range w.ports() {
		o := owners[p]
		if len(o) != 1 || o[0].Comm != "sleep" || o[0].Identity != want[p] {
			t.Errorf("%s: port %d owners %+v, want one sleep with %+v", what, p, o, want[p])
		}
	}
}

// dial makes one connection to each listener (an enqueue each: the
// sleeps never accept), closed when the test ends.
func (w *workloads) dial(t *testing.T) {
	for _, p := range w.ports() {
		res, err := w.ns.DialMany(context.Background(), fmt.Sprintf("127.0.0.1:%d", p), 1, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { res.Close() })
	}
}

func listenerOwners(t *testing.T, args ...string) map[uint16][]aggregate.Owner {
	t.Helper()
	out := map[uint16][]aggregate.Owner{}
	for _, r := range listenersJSON(t, args...) {
		b, _ := json.Marshal(r)
		var row render.ListenerRow
		if err := json.Unmarshal(b, &row); err != nil {
			t.Fatal(err)
		}
		out[row.Port] = row.Owners
	}
	return out
}

// Every listener is named by its workload in listeners (JSON and text),
// and the filters select exactly its rows.
func TestKernelWorkloadListeners(t *testing.T) {
	kerneltest.Root(t)
	w := startWorkloads(t)
	base := []string{"listeners", "--netns", w.netns, "--runtime-endpoint", "unix://" + w.sock}
	w.checkOwners(t, "listeners -o json", listenerOwners(t, append(base, "-o", "json")...), w.want)

	code, stdout, stderr := runCLI(base...)
	if code != 0 || stderr != "" {
		t.Fatalf("listeners: exit %d, stderr %q", code, stderr)
	}
	for p, name := range w.display {
		if !slices.ContainsFunc(strings.Split(stdout, "\n"), func(l string) bool {
			return strings.Contains(l, fmt.Sprintf("127.0.0.1:%d ", p)) && strings.HasSuffix(l, " "+name)
		}) {
			t.Errorf("no row for :%d ending in WORKLOAD %q:\n%s", p, name, stdout)
		}
	}

	webID, dbID := w.want[w.web.port].ContainerID, w.want[w.db.port].ContainerID
	for _, c := range []struct {
		filter []string
		want   []uint16
	}{
		{[]string{"--pod", "web-0"}, []uint16{w.web.port}},
		{[]string{"--k8s-namespace", "data"}, []uint16{w.db.port}},
		{[]string{"--k8s-namespace", "shop", "--pod", "web-0", "--container", "nginx"}, []uint16{w.web.port}},
		{[]string{"--container", "postgres"}, []uint16{w.db.port}},
		{[]string{"--container", dbID[:10]}, []uint16{w.db.port}},
		{[]string{"--container", webID}, []uint16{w.web.port}},
		{[]string{"--unit", strings.TrimSuffix(w.unit, ".service")}, []uint16{w.svc.port}},
		{[]string{"--unit", w.unit, "--port", fmt.Sprint(w.svc.port)}, []uint16{w.svc.port}},
	} {
		got := listenerOwners(t, append(append(base, "-o", "json"), c.filter...)...)
		var ports []uint16
		for p := range got {
			ports = append(ports, p)
		}
		slices.Sort(ports)
		if !slices.Equal(ports, c.want) {
			t.Errorf("%v: ports %v, want %v", c.filter, ports, c.want)
		}
	}
	if w.dock.port != 0 {
		got := listenerOwners(t, append(base, "-o", "json", "--container", w.want[w.dock.port].ContainerID[:12])...)
		if len(got) != 1 || got[w.dock.port] == nil {
			t.Errorf("--container of the docker container: %v", got)
		}
	}
	for _, c := range []struct{ filter []string }{
		{[]string{"--pod", "nope"}},
		{[]string{"--pod", "web-0", "--k8s-namespace", "data"}},
		{[]string{"--unit", w.unit, "--port", fmt.Sprint(w.web.port)}},
	} {
		code, stdout, stderr := runCLI(append(base, c.filter...)...)
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		if code != 1 || stdout != "" || len(lines) != 1 || !strings.HasPrefix(lines[0], "synq: no listener") ||
			!strings.Contains(lines[0], strings.Join(c.filter[:2], " ")) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 1 and one line naming the filter", c.filter, code, stdout, stderr)
		}
	}
}

// Without the runtime (no socket, or one that refuses), listeners still
// exits 0 with what the cgroup paths say, and says why in one line.
func TestKernelWorkloadDegraded(t *testing.T) {
	kerneltest.Root(t)
	w := startWorkloads(t)
	refusing := filepath.Join(t.TempDir(), "refusing.sock")
	l, err := net.Listen("unix", refusing)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	cgroupOnly := map[uint16]identity.Identity{}
	for p, id := range w.want {
		if id.Pod != "" {
			id = identity.FromCgroup(w.cgroupOf(t, p))
		}
		cgroupOnly[p] = id
	}
	if id := cgroupOnly[w.web.port]; id.PodUID == "" || id.ContainerID == "" || id.Pod != "" {
		t.Fatalf("cgroup identity of web %+v", id)
	}
	for _, c := range []struct{ endpoint, says string }{
		{filepath.Join(t.TempDir(), "absent.sock"), "no such file"},
		{refusing, "connection refused"},
	} {
		args := []string{"listeners", "--netns", w.netns, "--runtime-endpoint", c.endpoint, "-o", "json"}
		code, stdout, stderr := runCLI(args...)
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		if code != 0 || len(lines) != 1 || !strings.Contains(lines[0], c.says) || !strings.Contains(lines[0], "identities from cgroup paths alone") {
			t.Errorf("%s: exit %d, stderr %q; want 0 and one line saying %q", c.endpoint, code, stderr, c.says)
		}
		owners := map[uint16][]aggregate.Owner{}
		for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
			var row render.ListenerRow
			if err := json.Unmarshal([]byte(line), &row); err != nil {
				t.Fatal(err)
			}
			owners[row.Port] = row.Owners
		}
		w.checkOwners(t, c.endpoint, owners, cgroupOnly)
	}
}

// cgroupOf is the cgroup synq reads for the sleep holding port's listener.
func (w *workloads) cgroupOf(t *testing.T, port uint16) string {
	for _, l := range []workloadListener{w.svc, w.web, w.db, w.dock} {
		if l.port == port {
			return identity.ReadCgroup("/proc", l.pid)
		}
	}
	t.Fatalf("no listener on %d", port)
	return ""
}
