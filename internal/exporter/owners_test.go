package exporter

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/synq-trace/synq/internal/aggregate"
	"github.com/synq-trace/synq/internal/identity"
	"github.com/synq-trace/synq/tracer"
)

var (
	ctrA = strings.Repeat("a1", 32)
	ctrB = strings.Repeat("b2", 32)
)

func podOwner(pid int, ctr, pod string, names bool) aggregate.Owner {
	id := identity.Identity{Runtime: "containerd", ContainerID: ctr, PodUID: "uid-" + pod}
	if names {
		id.Namespace, id.Pod, id.Container = "shop", pod, "web"
	}
	return aggregate.Owner{PID: pid, Comm: "server", Identity: id}
}

// idOf is a listener's sample id with identity labels.
func idOf(port uint16, ns, pod, ctr string) string {
	return fmt.Sprintf("addr=127.0.0.1,container=%s,namespace=%s,netns=%d,pod=%s,port=%d", ctr, ns, testNetns, pod, port)
}

// info is the sample id of synq_listener_info with these labels.
func info(labels ...string) string {
	ls := strings.Split(strings.Join(labels, ","), ",")
	sort.Strings(ls)
	return "synq_listener_info{" + strings.Join(ls, ",") + "}"
}

// Listener series carry the namespace, pod and container of their socket's
// owner; synq_listener_info the rest; the folded series none. The names
// follow the owner, survive the runtime going away, and a change of labels
// moves the series' count with it: never backwards, never twice.
func TestListenerIdentity(t *testing.T) {
	f := newFake(fentryInfo())
	f.listen(1, 8001) // socket inode 10
	f.listen(2, 8002) // 20: folded
	f.listen(3, 8003) // 30: a unit, no container
	f.owners = map[uint64][]aggregate.Owner{
		// The shell that started it holds the socket too: the owner that
		// names the pod wins.
		10: {{PID: 7, Comm: "sh", Identity: identity.Identity{Unit: "session-1.scope"}}, podOwner(99, ctrA, "web-0", true)},
		20: {podOwner(100, ctrB, "web-1", true)},
		30: {{PID: 300, Comm: "nginx", Identity: identity.Identity{Unit: "nginx.service"}}},
	}
	f.ownerReport = OwnerReport{Asked: true}
	e, _ := newTestExporter(t, f, Options{MaxListeners: 2})
	f.update(1, func(c *tracer.Counts) { c.Enqueue, c.AckOverflow = 50, 2 })
	f.update(3, func(c *tracer.Counts) { c.Enqueue = 40 })
	f.update(2, func(c *tracer.Counts) { c.Enqueue = 1 })
	m := scrape(t, e)
	for id, want := range map[string]float64{
		enq + "{" + idOf(8001, "shop", "web-0", "web") + "}":                                      50,
		enq + "{" + idOf(8003, "", "", "") + "}":                                                  40,
		enq + "{" + otherID + "}":                                                                 1,
		"synq_listen_drops_total{" + idOf(8001, "shop", "web-0", "web") + ",reason=ack-overflow}": 2,
		info(idOf(8001, "shop", "web-0", "web"), "comm=server,container_id="+ctrA+",netns_name=,pid=99,pod_uid=uid-web-0,runtime=containerd,unit="): 1,
		info(idOf(8003, "", "", ""), "comm=nginx,container_id=,netns_name=,pid=300,pod_uid=,runtime=,unit=nginx.service"):                           1,
		`synq_scrape_source_success{source=cri}`: 1,
	} {
		if got, ok := m[id]; !ok || got != want {
			t.Errorf("%s = %v (found %v), want %v\n%v", id, got, ok, want, listenersOf(m, enq))
		}
	}
	if n := len(listenersOf(m, "synq_listener_info")); n != 2 {
		t.Errorf("%d synq_listener_info series, want 2 (one per listener with a slot)", n)
	}
	// The host namespace has listeners of a pod and of a unit: no pod.
	if got := m[fmt.Sprintf("synq_netns_info{namespace=,netns=%d,netns_name=,pod=}", testNetns)]; got != 1 {
		t.Errorf("synq_netns_info of a namespace shared by a pod and a unit: %v", listenersOf(m, "synq_netns_info"))
	}

	// The runtime stops answering: the same container keeps its names, the
	// cri source says it failed, /healthz says so and stays 200.
	f.mu.Lock()
	f.owners[10] = []aggregate.Owner{podOwner(99, ctrA, "", false)}
	f.ownerReport = OwnerReport{Asked: true, Err: errors.New("runtime unix:///run/containerd/containerd.sock: connection refused")}
	f.mu.Unlock()
	f.update(1, func(c *tracer.Counts) { c.Enqueue = 60 })
	m2 := scrape(t, e)
	if got := m2[enq+"{"+idOf(8001, "shop", "web-0", "web")+"}"]; got != 60 {
		t.Errorf("names lost with the runtime: %v", listenersOf(m2, enq))
	}
	if got := m2[`synq_scrape_source_success{source=cri}`]; got != 0 {
		t.Errorf("cri success %v with the runtime refusing, want 0", got)
	}
	var d *Degraded
	if err := e.Healthy(); !errors.As(err, &d) || !strings.Contains(err.Error(), "source cri failing") {
		t.Errorf("Healthy() = %v, want degraded naming the cri source", err)
	}
	checkMonotonic(t, m, m2)

	// Another container now owns the address (a hostNetwork pod
	// replaced): the series moves to the new labels with its count.
	f.mu.Lock()
	f.owners[10] = []aggregate.Owner{podOwner(120, ctrB, "web-9", true)}
	f.ownerReport = OwnerReport{Asked: true}
	f.mu.Unlock()
	f.update(1, func(c *tracer.Counts) { c.Enqueue = 65 })
	m3 := scrape(t, e)
	if _, ok := m3[enq+"{"+idOf(8001, "shop", "web-0", "web")+"}"]; ok {
		t.Errorf("old labels still exported")
	}
	if got := m3[enq+"{"+idOf(8001, "shop", "web-9", "web")+"}"]; got != 65 {
		t.Errorf("new owner's series %v, want 65 (the series' count continues)", got)
	}
	if got := sum(m3, enq); got != 65+40+1 {
		t.Errorf("sum of enqueued %v, want 106: nothing counted twice", got)
	}
	if err := e.Healthy(); err != nil {
		t.Errorf("Healthy() = %v after the runtime answered again", err)
	}
}

// No container in sight (a plain host, no runtime asked): no cri source.
func TestListenerIdentityNoRuntime(t *testing.T) {
	f := newFake(fentryInfo())
	f.listen(1, 8001)
	e, _ := newTestExporter(t, f, Options{})
	m := scrape(t, e)
	if _, ok := m[`synq_scrape_source_success{source=cri}`]; ok {
		t.Errorf("cri source reported though the runtime was never asked")
	}
	if _, ok := m[enq+"{"+lid(8001)+"}"]; !ok {
		t.Errorf("listener without owner: %v", listenersOf(m, enq))
	}
}
