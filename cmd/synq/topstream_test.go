package main

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/synq-trace/synq/internal/kerneltest"
	"github.com/synq-trace/synq/internal/netlab"
	"github.com/synq-trace/synq/tracer"
)

// top streams no record per connection (issue 19): n connections queued and
// accepted, and a SYN queue held at k requests, cross the ring buffer as
// nothing, while the rows' enqueues, accepts, latency count and both
// queues' peaks are exactly what the kernel counted and held.
func TestKernelTopStreamsNoConnections(t *testing.T) {
	const n, k = 100, 6
	kerneltest.Root(t)
	name, ns, listen := namedNetnsListen(t, "synq-tops", "tcp")
	busy := listen("127.0.0.1:0", 128)
	// TCP_DEFER_ACCEPT: final ACKs without data leave their requests in
	// the SYN queue (tcp_check_req).
	deferred := listen("127.0.0.1:0", 64, netlab.SockoptInt(unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT, 30))

	top := startSynq("top", "--once", "--interval", "3s", "--netns", name, "--output", "json")
	top.attached(t)
	c0, err := ns.Counters()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	res, err := ns.DialMany(ctx, busy.String(), n, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	if err := busy.WaitQueue(n, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	srv := netlab.Serve(busy, netlab.ServerConfig{Keep: true})
	defer srv.Stop()
	if !srv.WaitAccepts(n, 2*time.Second) {
		t.Fatalf("accepted %d of %d", srv.Accepts(), n)
	}

	held, err := ns.DialMany(ctx, deferred.String(), k, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var c net.Conn
	if err := ns.Do(func() (err error) { c, err = net.Dial("tcp4", deferred.String()); return }); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	dsrv := netlab.Serve(deferred, netlab.ServerConfig{Keep: true})
	defer dsrv.Stop()
	if !dsrv.WaitAccepts(1, 2*time.Second) {
		t.Fatal("the data-carrying connection was not accepted")
	}
	// The deferred clients reset: their requests leave the SYN queue, so
	// its peak can only come from the kernel's maxima, not from the
	// refresh's snapshot.
	held.Close()
	c1, err := ns.Counters()
	if err != nil {
		t.Fatal(err)
	}
	top.wait(t, 10*time.Second)

	frames := parseTopFrames(t, top.stdout.String())
	if len(frames) != 1 {
		t.Fatalf("--once printed %d frames", len(frames))
	}
	f := frames[0]
	d := c1.Sub(c0)
	t.Logf("tier %s: netns PassiveOpens +%d ListenDrops +%d, ring records %d; stdout:\n%s", f.Tier, d["Tcp.PassiveOpens"], d["TcpExt.ListenDrops"], f.RingRecords, top.stdout)
	if d["TcpExt.ListenDrops"] != 0 {
		t.Fatalf("ListenDrops +%d: the test wants no drop", d["TcpExt.ListenDrops"])
	}
	if f.RingRecords != 0 || f.Lost != 0 {
		t.Errorf("ring records %d, lost %d: top streamed records for %d connections without a drop", f.RingRecords, f.Lost, n+1)
	}
	var enq, acc uint64
	for _, l := range []*netlab.Listener{busy, deferred} {
		for _, r := range topRowsOf(f, l) {
			enq += r.Enqueues
			acc += r.Accepts
		}
	}
	enqueueListener := f.Tier != string(tracer.TierTracepoint) || releaseAtLeast(f.Kernel, 6, 6)
	if enqueueListener && enq != d["Tcp.PassiveOpens"] {
		t.Errorf("enqueues %d, the netns's PassiveOpens +%d", enq, d["Tcp.PassiveOpens"])
	}
	if want := uint64(srv.Accepts() + dsrv.Accepts()); acc != want {
		t.Errorf("accepts %d, the servers accepted %d", acc, want)
	}

	rs := topRowsOf(f, busy)
	if len(rs) != 1 {
		t.Fatalf("%d rows for %s", len(rs), busy)
	}
	r := rs[0]
	if r.Enqueues != n && enqueueListener || r.Accepts != n || r.AcceptLatency.Count != n {
		t.Errorf("busy listener: enqueues %d, accepts %d, latency count %d; want %d", r.Enqueues, r.Accepts, r.AcceptLatency.Count, n)
	}
	if enqueueListener && (r.AcceptQueue.Peak != n || r.AcceptQueue.Now != 0) {
		t.Errorf("busy listener: accept queue %+v, want peak %d (every connection queued before the first accept), now 0", r.AcceptQueue, n)
	}
	if len(r.Owners) == 0 || r.Owners[0].PID != os.Getpid() || !r.Owners[0].Accepting {
		t.Errorf("busy listener: owners %+v, want this test (pid %d) first, accepting", r.Owners, os.Getpid())
	}

	rs = topRowsOf(f, deferred)
	if len(rs) != 1 {
		t.Fatalf("%d rows for %s", len(rs), deferred)
	}
	if r := rs[0]; enqueueListener && (r.SynQueue.Peak != k || r.SynQueue.Now != 0 || r.Enqueues != 1) {
		t.Errorf("deferred listener: SYN queue %+v, enqueues %d; want peak %d (held when the data-carrying connection was enqueued), now 0, 1 enqueue",
			r.SynQueue, r.Enqueues, k)
	}
}
