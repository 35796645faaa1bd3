package aggregate

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/synq-trace/synq/tracer"
)

func TestMembers(t *testing.T) {
	ep := endpointIn(7)
	l := func(e tracer.Endpoint, ino uint64) tracer.Listener { return tracer.Listener{Endpoint: e, Inode: ino} }
	ls := []tracer.Listener{
		l(ep("127.0.0.1", 80), 30), l(ep("127.0.0.1", 80), 10), l(ep("127.0.0.1", 80), 20), // one group of 3
		l(ep("127.0.0.2", 80), 40), // same port, other address: alone
		l(ep("::1", 80), 50),       // other family: alone
	}
	other := l(ep("127.0.0.1", 80), 60)
	other.Netns = 8 // other netns: alone
	got := Members(append(ls, other))
	want := map[uint64]int{10: 1, 20: 2, 30: 3}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Members = %v, want %v", got, want)
	}
	if s := MemberLabel(ep("127.0.0.1", 80), 2); s != "127.0.0.1:80#2" {
		t.Errorf("MemberLabel = %q", s)
	}
	if s := MemberLabel(ep("::1", 80), 0); s != "[::1]:80" {
		t.Errorf("MemberLabel = %q", s)
	}
}

// Every worker holds the socket; the one accept events show comes first,
// marked; an acceptor holding no descriptor any more is listed too.
func TestAcceptorsFirst(t *testing.T) {
	acc := acceptors{}
	accept := func(pid uint32, comm string) {
		acc.observe(&tracer.Event{Kind: tracer.KindAccept, Listener: 1, PID: pid, Comm: tracer.MakeComm(comm)})
	}
	accept(12, "nginx")
	accept(12, "nginx")
	acc.observe(&tracer.Event{Kind: tracer.KindEnqueue, Listener: 1, PID: 99})
	holders := []Owner{{PID: 10, Comm: "nginx", Cgroup: "/a"}, {PID: 11, Comm: "nginx", Cgroup: "/a"}, {PID: 12, Comm: "nginx", Cgroup: "/a"}}
	got := MarkAccepting(holders, acc[1])
	want := []Owner{{PID: 12, Comm: "nginx", Cgroup: "/a", Accepting: true}, {PID: 10, Comm: "nginx", Cgroup: "/a"}, {PID: 11, Comm: "nginx", Cgroup: "/a"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("MarkAccepting = %+v, want %+v", got, want)
	}
	accept(13, "gone")
	got = MarkAccepting(holders, acc[1])
	if len(got) != 4 || got[0].PID != 13 || !got[0].Accepting || got[1].PID != 12 || !got[1].Accepting {
		t.Errorf("after pid 13 accepted: %+v", got)
	}
	if got := MarkAccepting(holders, nil); !reflect.DeepEqual(got, holders) {
		t.Errorf("no acceptors: %+v", got)
	}
	for pid := uint32(100); pid < 120; pid++ {
		accept(pid, "w")
	}
	if n := len(acc[1]); n != maxAcceptors {
		t.Errorf("%d acceptors remembered, want at most %d", n, maxAcceptors)
	}
}

// endpointIn returns a maker of endpoints in the netns of that inode.
func endpointIn(netns uint32) func(addr string, port uint16) tracer.Endpoint {
	return func(addr string, port uint16) tracer.Endpoint {
		return tracer.Endpoint{Netns: netns, Addr: netip.MustParseAddr(addr), Port: port}
	}
}
