package ledger

import (
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/synq-trace/synq/internal/netlab"
	"github.com/synq-trace/synq/tracer"
	"golang.org/x/sys/unix"
)

func lst(id tracer.ListenerID, netns uint32, inode uint64, skDrops uint32) tracer.Listener {
	return tracer.Listener{ID: id, Inode: inode, SkDrops: skDrops,
		Endpoint: tracer.Endpoint{Netns: netns, Addr: netip.MustParseAddr("127.0.0.1"), Port: uint16(id)}}
}

func view(nss ...NetnsView) *View { return &View{Netns: nss} }

func nsv(ino uint64, err error, ls ...tracer.Listener) NetnsView {
	return NetnsView{NS: Namespace{Inode: ino}, Listeners: ls, Err: err}
}

// sk_drops baselines: a listener the baseline listed keeps what it had; one
// first listed later counts from 0 if its namespace was listed before or did
// not exist at the start, but not if synq could not list it then (its
// history is unknown). A new socket at a freed one's address starts afresh.
func TestTallyBaselines(t *testing.T) {
	denied := errors.New("denied")
	ta := NewTally()
	ta.Update(view(nsv(1, nil, lst(10, 1, 100, 40)), nsv(2, denied), nsv(3, nil)), nil, nil)
	ta.Update(view(
		nsv(1, nil, lst(10, 1, 100, 45), lst(11, 1, 101, 7)),
		nsv(2, nil, lst(20, 2, 200, 9)),
		nsv(3, nil, lst(30, 3, 300, 3)),
		nsv(4, nil, lst(40, 4, 400, 5)),
	), map[tracer.ListenerID]tracer.Counts{10: {Enqueue: 3}}, nil)
	for _, c := range []struct {
		id           tracer.ListenerID
		first, befor uint32
	}{
		{10, 40, 40}, // listed at the baseline
		{11, 0, 0},   // new in a namespace listed before
		{20, 9, 9},   // a namespace synq could not list at the start
		{30, 0, 0},   // an empty namespace at the start
		{40, 0, 0},   // a namespace created since
	} {
		s := ta.Get(c.id)
		if s == nil || s.First.SkDrops != c.first || s.Before.SkDrops != c.befor || !s.Listed || !s.FirstListed == (c.id != 10) {
			t.Errorf("listener %d: %+v, want sk_drops baseline %d", c.id, s, c.first)
		}
	}
	if s := ta.Get(10); s.Delta.Enqueue != 3 || s.Counts.Enqueue != 3 {
		t.Errorf("counted %+v, want 3 enqueues", s)
	}
	// The LRU map evicted listener 10's entry and counts again from 0: 2
	// enqueues and 1 accept since, not 0 and 1.
	ta.Update(view(nsv(1, nil, lst(10, 1, 100, 45))), map[tracer.ListenerID]tracer.Counts{10: {Enqueue: 2, Accept: 1}}, nil)
	if s := ta.Get(10); s.Delta != (tracer.Counts{Enqueue: 2, Accept: 1}) || s.Counts.Enqueue != 5 {
		t.Errorf("after an eviction %+v", s)
	}
	// Listener 10 closed and another socket took its address.
	ta.Update(view(nsv(1, nil, lst(10, 1, 150, 2))), map[tracer.ListenerID]tracer.Counts{10: {Enqueue: 3, Accept: 1}}, nil)
	if s := ta.Get(10); !s.New || s.Inode != 150 || s.First.SkDrops != 0 || s.Counts != (tracer.Counts{Enqueue: 1}) {
		t.Errorf("new incarnation %+v", s)
	}
	// Listeners that left every source are forgotten, only after a
	// complete walk.
	ta.Update(view(nsv(1, denied)), nil, nil)
	if ta.Get(10) == nil {
		t.Error("listener forgotten after an incomplete walk")
	}
	ta.Update(view(nsv(1, nil)), nil, nil)
	if ta.Get(10) != nil {
		t.Error("closed listener kept")
	}
}

// PerNetns: each namespace's window starts at its own first listing, and a
// closed socket's sk_drops since its baseline are kept, also once another
// socket took its address, until they add nothing.
func TestTallyPerNetns(t *testing.T) {
	denied := errors.New("denied")
	ta := NewTally()
	ta.PerNetns = true
	ta.Update(view(nsv(1, nil, lst(10, 1, 100, 40)), nsv(2, denied)), nil, nil)
	ta.Update(view(
		nsv(1, nil, lst(10, 1, 100, 45), lst(11, 1, 101, 7)),
		nsv(2, nil, lst(20, 2, 200, 9)),
		nsv(4, nil, lst(40, 4, 400, 5)),
	), nil, nil)
	for _, c := range []struct {
		id     tracer.ListenerID
		first  uint32
		drops  uint64
		closed bool
	}{
		{10, 40, 5, false}, // listed at the baseline
		{11, 0, 7, false},  // new in a namespace listed before
		{20, 9, 0, false},  // a namespace synq could not list at the start
		{40, 5, 0, false},  // a namespace first listed now: its baseline
	} {
		if s := ta.Get(c.id); s == nil || s.First.SkDrops != c.first || s.SkDrops() != c.drops || s.Closed != c.closed {
			t.Errorf("listener %d: %+v, want sk_drops baseline %d, %d since", c.id, s, c.first, c.drops)
		}
	}
	// 10 closes after 2 more drops, 11 with none since; 20's namespace
	// cannot be listed: 20 is not closed.
	ta.Update(view(nsv(1, nil, lst(10, 1, 100, 47)), nsv(2, denied), nsv(4, nil, lst(40, 4, 400, 5))), nil, nil)
	ta.Update(view(nsv(1, nil), nsv(2, denied), nsv(4, nil, lst(40, 4, 400, 5))), map[tracer.ListenerID]tracer.Counts{11: {Enqueue: 1}}, nil)
	if s := ta.Get(10); s == nil || !s.Closed || s.SkDrops() != 7 {
		t.Errorf("closed listener 10: %+v, want 7 sk_drops kept", s)
	}
	if s := ta.Get(11); s == nil || !s.Closed || s.SkDrops() != 7 {
		t.Errorf("closed listener 11 (still counted): %+v", s)
	}
	if s := ta.Get(20); s == nil || s.Closed {
		t.Errorf("listener 20 of a namespace not listed: %+v, want kept open", s)
	}
	// Another socket takes 10's address: 3 drops of its own, 7 before.
	ta.Update(view(nsv(1, nil, lst(10, 1, 150, 3)), nsv(2, nil, lst(20, 2, 200, 9))), nil, nil)
	if s := ta.Get(10); s == nil || !s.New || s.First.SkDrops != 0 || s.Earlier != 7 || s.SkDrops() != 10 {
		t.Errorf("new incarnation at 10: %+v, want 3 drops after 7 earlier", s)
	}
	// A closed socket that added nothing is forgotten; one that did is not.
	ta.Update(view(nsv(1, nil), nsv(2, nil)), nil, nil)
	if ta.Get(20) != nil {
		t.Error("closed listener 20 without sk_drops kept")
	}
	if s := ta.Get(10); s == nil || s.SkDrops() != 10 {
		t.Errorf("closed listener 10 forgotten: %+v", s)
	}
}

// Endpoints from events name listeners no snapshot showed.
func TestTallyEndpointsFromEvents(t *testing.T) {
	ta := NewTally()
	ta.Update(view(), nil, nil)
	ta.Observe(&tracer.Event{Listener: 7, Endpoint: tracer.Endpoint{Netns: 9, Port: 80}})
	ta.Update(view(), map[tracer.ListenerID]tracer.Counts{7: {AckOverflow: 1}}, nil)
	if s := ta.Get(7); s == nil || !s.HasEndpoint || s.Port != 80 || s.Netns != 9 || s.Listed {
		t.Errorf("%+v, want :80 in netns 9, named by its event", s)
	}
}

// The walk on a real namespace: the port filter, the namespace's counters,
// and its error policy: a namespace gone before synq entered it is not an
// error, one it cannot enter is said once, with others that fail alike.
func TestKernelWalker(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace and loads iter/tcp")
	}
	ns, err := netlab.New("")
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	a, err := ns.Listen("tcp4", "127.0.0.1:0", 4)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := ns.Listen("tcp6", "[::1]:0", 4)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	snap, err := tracer.NewSnapshotter("")
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()

	real := Namespace{Inode: ns.Inode(), Do: ns.Do}
	w := &Walker{Lister: snap, Only: &real, Port: b.Port(), MIB: true}
	v, err := w.Walk()
	if err != nil {
		t.Fatal(err)
	}
	ls := v.Listeners()
	if len(ls) != 1 || ls[0].Port != b.Port() || uint64(ls[0].Netns) != ns.Inode() {
		t.Fatalf("listeners %+v, want only :%d of netns %d", ls, b.Port(), ns.Inode())
	}
	if _, ok := v.Netns[0].MIB["TcpExt.ListenDrops"]; !ok {
		t.Errorf("no TcpExt.ListenDrops in the namespace's counters")
	}

	gone := Namespace{Inode: 1, Do: func(func() error) error { return unix.ENOENT }}
	denied := func(ino uint64) Namespace {
		return Namespace{Inode: ino, Name: "denied", Do: func(func() error) error { return unix.EPERM }}
	}
	var said []string
	w = &Walker{Lister: snap, Report: func(m string) { said = append(said, m) },
		Discover: func() ([]Namespace, error) { return []Namespace{gone, real, denied(2), denied(3)}, nil }}
	for range 2 {
		if v, err = w.Walk(); err != nil {
			t.Fatal(err)
		}
	}
	if len(v.Netns) != 3 || v.Complete() || len(v.Listeners()) != 2 {
		t.Errorf("view %+v: want the real netns with 2 listeners and 2 it could not enter", v)
	}
	if len(said) != 1 || !strings.Contains(said[0], "2 network namespaces") || !strings.Contains(said[0], "needs CAP_SYS_ADMIN") {
		t.Errorf("said %q, want one line for both namespaces it could not enter", said)
	}
}
