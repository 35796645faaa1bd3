package reconcile_test

// Kernel tests: a backlog-1 listener in a private network namespace is
// overflowed for real and the report must show exactly 100% for every
// counter the tier claims. They need root and run here and in the test VMs
// of `make vmtest VM_PKGS=./internal/reconcile/...`, once per tier, selected
// with SYNQ_TEST_TIER.

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/synq-trace/synq/internal/kerneltest"
	"github.com/synq-trace/synq/internal/netlab"
	"github.com/synq-trace/synq/internal/reconcile"
	"github.com/synq-trace/synq/tracer"
)

// session is a private netns, a tracer (filtered to it, or to nothing) whose
// events feed a reconciler, and the reconciler.
type session struct {
	t    *testing.T
	ns   *netlab.Netns
	tr   *tracer.Tracer
	rec  *reconcile.Reconciler
	stop func()
}

// newSession traces only ns, or every netns with all (the reconciler then
// discovers namespaces and places listeners itself; it is given only ns).
func newSession(t *testing.T, sysctls map[string]string, all bool) *session {
	t.Helper()
	ns := kerneltest.Netns(t, sysctls)
	cfg := tracer.Config{}
	if !all {
		cfg.Netns = uint32(ns.Inode())
	}
	tr := kerneltest.Open(t, cfg)
	snap, err := tracer.NewSnapshotter("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { snap.Close() })
	target := reconcile.Namespace{Inode: ns.Inode(), Name: ns.Name(), Do: ns.Do}
	rcfg := reconcile.Config{Traced: &target}
	if all {
		rcfg = reconcile.Config{Discover: func() ([]reconcile.Namespace, error) { return []reconcile.Namespace{target}, nil }}
	}
	rec, err := reconcile.New(tr, snap, rcfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := tr.Read(ctx, rec.Observe); err != nil {
			t.Error(err)
		}
	})
	s := &session{t: t, ns: ns, tr: tr, rec: rec}
	s.stop = sync.OnceFunc(func() {
		cancel()
		wg.Wait()
	})
	t.Cleanup(s.stop)
	return s
}

// overflow dials a backlog-1 listener 8 times at once, lets delayed ACKs and
// SYN-ACK retransmits happen, then resets every client so that the counters
// settle.
func (s *session) overflow(l *netlab.Listener, opts ...netlab.SockOpt) {
	s.t.Helper()
	res, err := s.ns.DialMany(context.Background(), l.Addr().String(), 8, 2500*time.Millisecond, opts...)
	if err != nil {
		s.t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	res.Close()
	time.Sleep(200 * time.Millisecond)
	s.t.Logf("clients: %d established, %d pending, %d failed", res.Established, res.Pending, res.Failed)
}

func (s *session) report() reconcile.NetnsReport {
	s.t.Helper()
	time.Sleep(300 * time.Millisecond) // > the reader's poll interval: events observed
	s.stop()
	rep, err := s.rec.Report(true)
	if err != nil {
		s.t.Fatal(err)
	}
	var b strings.Builder
	if err := reconcile.WriteText(&b, rep); err != nil {
		s.t.Fatal(err)
	}
	s.t.Logf("report:\n%s", b.String())
	n, ok := rep.Namespace(s.ns.Inode())
	if !ok {
		s.t.Fatalf("no report of the test netns %d", s.ns.Inode())
	}
	if n.Err != "" {
		s.t.Fatalf("netns not readable: %s", n.Err)
	}
	if rep.RecursionMisses != 0 {
		s.t.Logf("%d recursion misses", rep.RecursionMisses)
	}
	return n
}

// wantClaims is what the tier must claim: everything on the SYN side with
// fentry/kprobe (all hooks attached), only exact ListenDrops with
// tracepoints.
func wantClaims(info tracer.Info) map[string]bool {
	if info.Tier == tracer.TierTracepoint {
		return map[string]bool{reconcile.ListenDrops: info.ExactListenDrops}
	}
	for _, h := range info.Hooks {
		if h.Err != nil && !strings.Contains(h.Program, "accept") && !strings.Contains(h.Program, "synack") {
			return map[string]bool{} // a SYN-path hook is missing: nothing may be claimed
		}
	}
	return map[string]bool{
		reconcile.ListenDrops: true, reconcile.ListenOverflows: true,
		reconcile.TCPReqQFullDrop: true, reconcile.SyncookiesSent: true,
	}
}

// check asserts the rules of the report: every claimed counter exactly
// 100%, every unclaimed one explained, and the counters that must have moved
// in the scenario did.
func (s *session) check(n reconcile.NetnsReport, moved ...string) {
	s.checkScope(n, true, moved...)
}

// checkScope: with filtered false (every netns traced) enqueues the
// tracepoint tier cannot pin on a listener (before 6.6) are in no netns.
func (s *session) checkScope(n reconcile.NetnsReport, filtered bool, moved ...string) {
	t := s.t
	t.Helper()
	info := s.tr.Info()
	want := wantClaims(info)
	if len(n.Rows) != len(reconcile.Counters()) {
		t.Errorf("%d rows, want one per counter %v", len(n.Rows), reconcile.Counters())
	}
	for _, r := range n.Rows {
		if r.Kernel == nil {
			t.Errorf("%s: kernel value unknown", r.Counter)
			continue
		}
		if r.Claimed != want[r.Counter] {
			t.Errorf("%s: claimed %v, want %v (note %q)", r.Counter, r.Claimed, want[r.Counter], r.Note)
		}
		if !r.Claimed {
			if r.Note == "" {
				t.Errorf("%s: not claimed and no note says why", r.Counter)
			}
			continue
		}
		if r.Synq == nil || *r.Synq != *r.Kernel {
			t.Errorf("%s: claimed, kernel %d, synq %v (%s)", r.Counter, *r.Kernel, u64(r.Synq), r.Note)
		}
		if *r.Kernel > 0 && (r.Coverage == nil || *r.Coverage != 100) {
			t.Errorf("%s: claimed, coverage %v, want exactly 100", r.Counter, r.Coverage)
		}
	}
	for _, c := range moved {
		if r, _ := n.Row(c); r.Kernel == nil || *r.Kernel == 0 {
			t.Errorf("the kernel counted no %s: the scenario did not happen", c)
		}
	}
	// Unclaimed relations that hold anyway: synq never counts more
	// SYN-ACK retransmits than TCPSynRetrans, and, with no MPTCP and no
	// closing listener here, one enqueue per PassiveOpens.
	if r, _ := n.Row(reconcile.TCPSynRetrans); r.Synq != nil && r.Kernel != nil && *r.Synq > *r.Kernel {
		t.Errorf("TCPSynRetrans %d < synack-retrans %d", *r.Kernel, *r.Synq)
	}
	if r, _ := n.Row(reconcile.PassiveOpens); r.Synq == nil || r.Kernel == nil || *r.Synq > *r.Kernel ||
		filtered && *r.Synq != *r.Kernel {
		t.Errorf("PassiveOpens %v, enqueues %v: want equal in this scenario", u64(r.Kernel), u64(r.Synq))
	}
}

// SYN side: the handshake runs inside connect(2), so SYNs meet the full
// accept queue (ListenOverflows at SYN time).
func TestKernelReconcileSynOverflow(t *testing.T) {
	s := newSession(t, nil, false)
	l := kerneltest.Listen(t, s.ns, "tcp4", "127.0.0.1:0", 1)
	s.overflow(l)
	s.check(s.report(), reconcile.ListenDrops, reconcile.ListenOverflows, reconcile.PassiveOpens)
}

// ACK side: delayed final ACKs find the queue full (half-open connections,
// SYN-ACK retransmits).
func TestKernelReconcileAckOverflow(t *testing.T) {
	s := newSession(t, nil, false)
	l := kerneltest.Listen(t, s.ns, "tcp6", "[::1]:0", 1)
	s.overflow(l, netlab.DelayHandshakeACK())
	s.check(s.report(), reconcile.ListenDrops, reconcile.ListenOverflows)
}

// Without cookies the SYN queue of a backlog-1 listener fills.
func TestKernelReconcileSynQueueFull(t *testing.T) {
	s := newSession(t, map[string]string{"net.ipv4.tcp_syncookies": "0"}, false)
	l := kerneltest.Listen(t, s.ns, "tcp4", "127.0.0.1:0", 1)
	s.overflow(l, netlab.DelayHandshakeACK())
	s.check(s.report(), reconcile.ListenDrops, reconcile.TCPReqQFullDrop)
}

// With syncookies=2 every SYN gets a cookie.
func TestKernelReconcileCookies(t *testing.T) {
	s := newSession(t, map[string]string{"net.ipv4.tcp_syncookies": "2"}, false)
	l := kerneltest.Listen(t, s.ns, "tcp6", "[::1]:0", 1)
	s.overflow(l, netlab.DelayHandshakeACK())
	s.check(s.report(), reconcile.ListenDrops, reconcile.SyncookiesSent)
}

// A listener created after the baseline and closed before the report: its
// drops still count (the tracepoint tier read its sk_drops in a sample),
// and the one at the same port that replaced it counts from zero.
func TestKernelReconcileListenerClosedMidRun(t *testing.T) {
	s := newSession(t, nil, false)
	l, err := s.ns.Listen("tcp4", "127.0.0.1:0", 1)
	if err != nil {
		t.Fatal(err)
	}
	s.overflow(l, netlab.DelayHandshakeACK())
	if err := s.rec.Sample(); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l2 := kerneltest.Listen(t, s.ns, "tcp4", l.Addr().String(), 1)
	s.overflow(l2, netlab.DelayHandshakeACK())
	n := s.report()
	s.check(n, reconcile.ListenDrops, reconcile.ListenOverflows)
	closed := 0
	for _, lr := range n.Listeners {
		if lr.Closed {
			closed++
		}
	}
	t.Logf("%d listeners reported, %d closed", len(n.Listeners), closed)
}

// Every netns traced: the reconciler places listeners in namespaces by
// listing them and from events, and other namespaces' traffic stays out.
func TestKernelReconcileAllNetns(t *testing.T) {
	s := newSession(t, nil, true)
	l := kerneltest.Listen(t, s.ns, "tcp4", "127.0.0.1:0", 1)
	s.overflow(l, netlab.DelayHandshakeACK())
	s.checkScope(s.report(), false, reconcile.ListenDrops, reconcile.ListenOverflows)
}

func u64(p *uint64) any {
	if p == nil {
		return nil
	}
	return *p
}
