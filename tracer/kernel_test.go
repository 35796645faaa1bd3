package tracer_test

// Kernel tests: real listeners, real SYNs and real drops in a private network
// namespace, compared with that namespace's own counters. They need root and
// run here (tracepoint tier) and in the test VMs of `make vmtest`, once per
// tier, selected with SYNQ_TEST_TIER.

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf/btf"
	"github.com/synq-trace/synq/internal/kerneltest"
	"github.com/synq-trace/synq/internal/netlab"
	"github.com/synq-trace/synq/tracer"
	"golang.org/x/sys/unix"
)

// session is a tracer filtered to one fresh netns, collecting its events.
type session struct {
	t      *testing.T
	ns     *netlab.Netns
	tr     *tracer.Tracer
	mu     sync.Mutex
	events []tracer.Event
	cancel context.CancelFunc
	done   chan error
}

func newSession(t *testing.T, sysctls map[string]string) *session {
	t.Helper()
	return newSessionWith(t, sysctls, tracer.Config{})
}

// newSessionWith traces the new netns with cfg (Tier and Netns are set here).
func newSessionWith(t *testing.T, sysctls map[string]string, cfg tracer.Config) *session {
	t.Helper()
	ns := kerneltest.Netns(t, sysctls)
	cfg.Netns = uint32(ns.Inode())
	tr := kerneltest.Open(t, cfg)
	s := &session{t: t, ns: ns, tr: tr, done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() {
		s.done <- tr.Read(ctx, func(ev *tracer.Event) {
			s.mu.Lock()
			s.events = append(s.events, *ev)
			s.mu.Unlock()
		})
	}()
	return s
}

// queued listens on loopback with backlog and completes n handshakes into
// its accept queue, which nobody accepts yet. Both close when the test ends.
// acceptClose accepts n connections from l and closes them.
func acceptClose(t *testing.T, l *netlab.Listener, n int) {
	t.Helper()
	for range n {
		c, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
}

func (s *session) queued(backlog, n int) *netlab.Listener {
	s.t.Helper()
	return s.queuedOn("tcp4", "127.0.0.1:0", backlog, n)
}

// queuedOn is queued on network ("tcp4", "tcp6") and addr.
func (s *session) queuedOn(network, addr string, backlog, n int) *netlab.Listener {
	s.t.Helper()
	l := kerneltest.Listen(s.t, s.ns, network, addr, backlog)
	res, err := s.ns.DialMany(context.Background(), l.Addr().String(), n, 2*time.Second)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { res.Close() })
	if err := l.WaitQueue(uint32(n), 2*time.Second); err != nil {
		s.t.Fatal(err)
	}
	return l
}

// stop ends reading once the ring buffer has been drained.
func (s *session) stop() []tracer.Event {
	s.t.Helper()
	time.Sleep(300 * time.Millisecond) // > the reader's poll interval
	s.cancel()
	if err := <-s.done; err != nil {
		s.t.Fatal(err)
	}
	st, err := s.tr.Stats()
	if err != nil {
		s.t.Fatal(err)
	}
	if st.Lost != 0 || st.BadRecords != 0 {
		s.t.Errorf("lost %d records, %d undecodable", st.Lost, st.BadRecords)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.events
}

func (s *session) snapshot(id tracer.ListenerID, port uint16) tracer.Listener {
	s.t.Helper()
	snap, err := tracer.NewSnapshotter("")
	if err != nil {
		s.t.Fatal(err)
	}
	defer snap.Close()
	var ls []tracer.Listener
	if err := s.ns.Do(func() (err error) { ls, err = snap.Listeners(); return }); err != nil {
		s.t.Fatal(err)
	}
	for _, l := range ls {
		if l.Port == port && (id == 0 || l.ID == id) {
			if l.Netns != uint32(s.ns.Inode()) {
				s.t.Fatalf("iterator opened in netns %d returned a listener of netns %d", s.ns.Inode(), l.Netns)
			}
			return l
		}
	}
	s.t.Fatalf("no listener on port %d in the snapshot (%d listeners)", port, len(ls))
	return tracer.Listener{}
}

func (s *session) counters() netlab.Counters {
	s.t.Helper()
	c, err := s.ns.Counters()
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

func countKind(evs []tracer.Event, port uint16, k tracer.Kind, r tracer.Reason) uint64 {
	var n uint64
	for _, e := range evs {
		if e.Port == port && e.Kind == k && (r == tracer.ReasonNone || e.Reason == r) {
			n++
		}
	}
	return n
}

func hasKind(info tracer.Info, k tracer.Kind) bool {
	for _, x := range info.Kinds() {
		if x == k {
			return true
		}
	}
	return false
}

// A backlog-1 listener that never accepts, dialed concurrently: every drop
// the kernel counts in this netns is attributed to it, exactly.
func TestKernelOverflowAttribution(t *testing.T) {
	type scenario struct {
		name, network, addr string
		opts                []netlab.SockOpt
		syncookies          string
	}
	var scenarios []scenario
	for _, f := range []struct{ network, addr string }{{"tcp4", "127.0.0.1:0"}, {"tcp6", "[::1]:0"}} {
		// syn: the handshake runs inside connect(2), so SYNs meet the full
		// queue. ack: clients delay their final ACK, so a burst of SYNs is
		// admitted and the ACKs then find the queue full (half-open).
		scenarios = append(scenarios,
			scenario{f.network + "/syn", f.network, f.addr, nil, ""},
			scenario{f.network + "/ack", f.network, f.addr, []netlab.SockOpt{netlab.DelayHandshakeACK()}, ""})
	}
	// With the final ACKs delayed the requests stay in the SYN queue: without
	// cookies it fills (TCPReqQFullDrop); with syncookies=2 every SYN gets a
	// cookie. The scenarios above run with the default, syncookies=1, so tcp6
	// meets 1 and 0 here, tcp4 1 and 2 here and 0, 1, 2 in TestKernelSynFlood.
	delayed := []netlab.SockOpt{netlab.DelayHandshakeACK()}
	scenarios = append(scenarios,
		scenario{"tcp6/ack/syncookies=0", "tcp6", "[::1]:0", delayed, "0"},
		scenario{"tcp4/ack/syncookies=2", "tcp4", "127.0.0.1:0", delayed, "2"})
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			sysctls := map[string]string{}
			if sc.syncookies != "" {
				sysctls["net.ipv4.tcp_syncookies"] = sc.syncookies
			}
			s := newSession(t, sysctls)
			l := kerneltest.Listen(t, s.ns, sc.network, sc.addr, 1)
			before := s.snapshot(0, l.Port())
			c0 := s.counters()

			res, err := s.ns.DialMany(context.Background(), l.Addr().String(), 8, 2500*time.Millisecond, sc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			// Let delayed ACKs and SYN-ACK retransmits (1 s) happen.
			time.Sleep(1500 * time.Millisecond)
			full := s.snapshot(before.ID, l.Port())
			clientSyns, err := res.SynRetrans()
			if err != nil {
				t.Fatal(err)
			}
			// RST every client: no more SYN or ACK retransmits, the counters settle.
			res.Close()
			time.Sleep(200 * time.Millisecond)
			c1 := s.counters()
			after := s.snapshot(before.ID, l.Port())
			evs := s.stop()
			counts, err := s.tr.Counts()
			if err != nil {
				t.Fatal(err)
			}
			c := counts[before.ID]
			d := c1.Sub(c0)
			t.Logf("clients: %d established, %d pending, %d failed, %d SYNs retransmitted", res.Established, res.Pending, res.Failed, clientSyns)
			t.Logf("kernel: ListenDrops %d ListenOverflows %d TCPReqQFullDrop %d SyncookiesSent %d; sk_drops %d->%d",
				d["TcpExt.ListenDrops"], d["TcpExt.ListenOverflows"], d["TcpExt.TCPReqQFullDrop"], d["TcpExt.SyncookiesSent"],
				before.SkDrops, after.SkDrops)
			t.Logf("kernel: PassiveOpens %d TCPSynRetrans %d", d["Tcp.PassiveOpens"], d["TcpExt.TCPSynRetrans"])
			t.Logf("synq: %+v", c)

			if d["TcpExt.ListenDrops"] == 0 {
				t.Fatal("the kernel counted no ListenDrops: the test did not overflow the listener")
			}
			if full.AcceptQueueLen <= full.AcceptQueueMax {
				t.Errorf("accept queue %d/%d: want len > max", full.AcceptQueueLen, full.AcceptQueueMax)
			}
			// Every tier: each child the kernel created (PassiveOpens, in
			// tcp_create_openreq_child) was queued, and each SYN-ACK it
			// retransmitted (TCPSynRetrans, less the clients' own SYN
			// retransmits) was seen.
			if n := countKind(evs, l.Port(), tracer.KindEnqueue, 0); n != d["Tcp.PassiveOpens"] {
				t.Errorf("%d enqueue events, the kernel counted PassiveOpens %d", n, d["Tcp.PassiveOpens"])
			}
			synacks := countKind(evs, l.Port(), tracer.KindSynackRetrans, 0)
			switch kernel := d["TcpExt.TCPSynRetrans"]; {
			case synacks+clientSyns > kernel:
				t.Errorf("%d synack-retrans events + %d client SYN retransmits > TCPSynRetrans %d", synacks, clientSyns, kernel)
			case res.Pending == 0 && synacks+clientSyns != kernel:
				// No client was left in SYN_SENT to retransmit after its
				// TCP_INFO was read: the rest are the listener's SYN-ACKs.
				t.Errorf("%d synack-retrans events, TCPSynRetrans %d - %d client SYN retransmits", synacks, kernel, clientSyns)
			}
			info := s.tr.Info()
			drops, exact := tracer.ListenDrops(info, before, after, c)
			if !exact {
				t.Skipf("tier %s on this kernel cannot attribute ListenDrops exactly (sk_drops delta %d)", info.Tier, drops)
			}
			if drops != d["TcpExt.ListenDrops"] {
				t.Errorf("synq attributes %d drops to %s, the kernel counted ListenDrops %d", drops, l, d["TcpExt.ListenDrops"])
			}
			if hasKind(info, tracer.KindAckOverflow) {
				if n := countKind(evs, l.Port(), tracer.KindAckOverflow, 0); n != c.AckOverflow {
					t.Errorf("%d ack-overflow events, %d counted in the kernel", n, c.AckOverflow)
				}
			}
			if hasKind(info, tracer.KindAckOverflow) {
				if c.AckOverflow > d["TcpExt.ListenOverflows"] {
					t.Errorf("%d ack-overflows, more than ListenOverflows %d", c.AckOverflow, d["TcpExt.ListenOverflows"])
				}
				// No client left in SYN_SENT: no SYN was dropped, every
				// overflow happened at the final ACK.
				if res.Pending == 0 && c.AckOverflow != d["TcpExt.ListenOverflows"] {
					t.Errorf("%d ack-overflows, ListenOverflows %d, and no SYN was dropped", c.AckOverflow, d["TcpExt.ListenOverflows"])
				}
			}
			if info.Tier == tracer.TierTracepoint {
				return
			}
			// fentry/kprobe see both sides of the listen path.
			if got := c.DropAcceptQueue + c.AckOverflow; got != d["TcpExt.ListenOverflows"] {
				t.Errorf("accept-queue-full drops %d + ack-overflows %d != ListenOverflows %d", c.DropAcceptQueue, c.AckOverflow, d["TcpExt.ListenOverflows"])
			}
			if c.DropSynQueue != d["TcpExt.TCPReqQFullDrop"] {
				t.Errorf("syn-queue-full drops %d != TCPReqQFullDrop %d", c.DropSynQueue, d["TcpExt.TCPReqQFullDrop"])
			}
			if c.Cookie != d["TcpExt.SyncookiesSent"] {
				t.Errorf("cookies %d != SyncookiesSent %d", c.Cookie, d["TcpExt.SyncookiesSent"])
			}
			for k, want := range map[tracer.Kind]uint64{tracer.KindSynDrop: c.SynDrops(), tracer.KindCookie: c.Cookie, tracer.KindSyn: c.Syn} {
				if n := countKind(evs, l.Port(), k, 0); n != want {
					t.Errorf("%d %s events, %d counted in the kernel", n, k, want)
				}
			}
		})
	}
}

// The application accepts only after a known delay: every accept event
// carries at least that latency, and not much more. IPv4 and IPv6.
func TestKernelAcceptLatency(t *testing.T) {
	const n, delay, slack = 5, 300 * time.Millisecond, 250 * time.Millisecond
	for _, f := range []struct{ network, addr string }{{"tcp4", "127.0.0.1:0"}, {"tcp6", "[::1]:0"}} {
		t.Run(f.network, func(t *testing.T) {
			s := newSession(t, nil)
			l := s.queuedOn(f.network, f.addr, 16, n)
			time.Sleep(delay)
			acceptClose(t, l, n)
			evs := s.stop()
			if got := countKind(evs, l.Port(), tracer.KindEnqueue, 0); got != n {
				t.Errorf("%d enqueue events, want %d", got, n)
			}
			if !hasKind(s.tr.Info(), tracer.KindAccept) {
				t.Skipf("tier %s on this kernel produces no accept events (%v)", s.tr.Info().Tier, s.tr.Info().Notes)
			}
			var accepts []tracer.Event
			for _, e := range evs {
				if e.Port == l.Port() && e.Kind == tracer.KindAccept {
					accepts = append(accepts, e)
				}
			}
			if len(accepts) != n {
				t.Fatalf("%d accept events, want %d (events: %s)", len(accepts), n, kinds(evs))
			}
			for _, e := range accepts {
				if !e.LatencyKnown || e.Latency < delay || e.Latency >= delay+slack {
					t.Errorf("accept of %s: latency %v (known %v), want [%v, %v)", e.Peer, e.Latency, e.LatencyKnown, delay, delay+slack)
				}
				if e.PID != uint32(os.Getpid()) {
					t.Errorf("accept by pid %d, want %d", e.PID, os.Getpid())
				}
				if e.Peer.Addr().Is6() != (f.network == "tcp6") {
					t.Errorf("accept on %s: peer %s", f.network, e.Peer)
				}
			}
		})
	}
}

// A TCP_DEFER_ACCEPT listener drops the bare final ACK and keeps the request,
// so its SYN-ACK is resent when the request timer fires (1 s); the client's
// answer to it completes the handshake. Every tier reports each resend with
// the listener's identity, exactly as often as the netns counts
// TCPSynRetrans (its clients, answered at once, resend no SYN).
func TestKernelSynackRetrans(t *testing.T) {
	const n, backlog = 3, 16
	s := newSession(t, nil)
	l := kerneltest.Listen(t, s.ns, "tcp4", "127.0.0.1:0", backlog, netlab.SockoptInt(unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT, 1))
	id := s.snapshot(0, l.Port()).ID
	c0 := s.counters()
	res, err := s.ns.DialMany(context.Background(), l.Addr().String(), n, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	// The children appear once the resent SYN-ACKs are answered.
	if err := l.WaitQueue(n, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	d := s.counters().Sub(c0)
	evs := s.stop()
	counts, err := s.tr.Counts()
	if err != nil {
		t.Fatal(err)
	}
	c := counts[id]
	t.Logf("kernel: TCPSynRetrans %d TCPDeferAcceptDrop %d; synq: %d synack-retrans events, %d counted",
		d["TcpExt.TCPSynRetrans"], d["TcpExt.TCPDeferAcceptDrop"], countKind(evs, l.Port(), tracer.KindSynackRetrans, 0), c.SynackRetrans)
	if d["TcpExt.TCPSynRetrans"] == 0 {
		t.Fatal("the kernel resent no SYN-ACK: the scenario did not happen")
	}
	if !hasKind(s.tr.Info(), tracer.KindSynackRetrans) {
		t.Fatalf("tier %s produces no synack-retrans events", s.tr.Info().Tier)
	}
	if c.SynackRetrans != d["TcpExt.TCPSynRetrans"] {
		t.Errorf("synack-retrans counted %d, the kernel counted TCPSynRetrans %d", c.SynackRetrans, d["TcpExt.TCPSynRetrans"])
	}
	var got uint64
	for _, e := range evs {
		if e.Kind != tracer.KindSynackRetrans {
			continue
		}
		got++
		if e.Netns != uint32(s.ns.Inode()) || e.Port != l.Port() || e.Addr != l.Addr().Addr() || !e.Peer.IsValid() {
			t.Errorf("synack-retrans of %v (peer %v) in netns %d, want %s in netns %d", e.Endpoint, e.Peer, e.Netns, l, s.ns.Inode())
		}
		if !e.QueueKnown || e.AcceptQueueMax != backlog || e.SynQueueLen == 0 {
			t.Errorf("synack-retrans with queues known=%v acc=%d/%d syn=%d: want the listener's, its request in the SYN queue",
				e.QueueKnown, e.AcceptQueueLen, e.AcceptQueueMax, e.SynQueueLen)
		}
	}
	if got != d["TcpExt.TCPSynRetrans"] {
		t.Errorf("%d synack-retrans events, the kernel counted TCPSynRetrans %d", got, d["TcpExt.TCPSynRetrans"])
	}
}

func kinds(evs []tracer.Event) string {
	m := map[tracer.Kind]int{}
	for _, e := range evs {
		m[e.Kind]++
	}
	return fmt.Sprint(m)
}

// What each tier produces on this kernel, as a line the kernel matrix
// collects for the README table; and the kinds every tier must have.
//
// A tier the kernel refuses is a skip, except under SYNQ_TEST_REQUIRE_TIER
// (vm/matrix.sh sets it): the matrix's Debian kernels have every tier, so a
// refusal there is a regression that must fail its cell, not turn it into
// "skip".
func TestKernelTierEvents(t *testing.T) {
	tr := kerneltest.OpenRequired(t, tracer.Config{})
	info := tr.Info()
	var names []string
	for _, k := range info.Kinds() {
		names = append(names, k.String())
	}
	t.Logf("synq-events: kernel=%s tier=%s exact_listen_drops=%v kinds=%s", info.Kernel, info.Tier, info.ExactListenDrops, strings.Join(names, ","))
	t.Logf("exact drop reasons: %v", info.ExactDropReasons)
	for _, n := range info.Notes {
		t.Logf("note: %s", n)
	}
	want := []tracer.Kind{tracer.KindSynackRetrans, tracer.KindEnqueue, tracer.KindAccept}
	if info.Tier != tracer.TierTracepoint {
		want = tracer.AllKinds
	} else if kernelHasDropReason(t, "SKB_DROP_REASON_TCP_LISTEN_OVERFLOW") {
		// 6.15+: kfree_skb names every ACK-side overflow.
		want = append(want, tracer.KindAckOverflow)
	}
	for _, k := range want {
		if !hasKind(info, k) {
			t.Errorf("tier %s lacks %s", info.Tier, k)
		}
	}
	// Distro kernels (CONFIG_KALLSYMS_ALL) let the SYN-side tiers read the
	// kernel's own verdict per drop; a kernel that does not is reported.
	if info.Tier != tracer.TierTracepoint && kallsymsHas("__per_cpu_offset") && !info.ExactDropReasons {
		t.Errorf("tier %s: kallsyms has __per_cpu_offset but drop reasons are not exact: %v", info.Tier, info.Notes)
	}
}

// kernelHasDropReason reads the running kernel's BTF, not the tracer's view.
func kernelHasDropReason(t *testing.T, name string) bool {
	t.Helper()
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		t.Fatal(err)
	}
	var reasons *btf.Enum
	if err := spec.TypeByName("skb_drop_reason", &reasons); err != nil {
		return false
	}
	for _, v := range reasons.Values {
		if v.Name == name {
			return true
		}
	}
	return false
}

func kallsymsHas(name string) bool {
	b, err := os.ReadFile("/proc/kallsyms")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[2] == name && f[0] != strings.Repeat("0", len(f[0])) {
			return true
		}
	}
	return false
}

// The kernel-side filters: only the listener on the asked port reports.
func TestKernelPortFilter(t *testing.T) {
	ns := kerneltest.Netns(t, nil)
	a := kerneltest.Listen(t, ns, "tcp4", "127.0.0.1:0", 16)
	b := kerneltest.Listen(t, ns, "tcp4", "127.0.0.1:0", 16)
	tr, err := tracer.Open(tracer.Config{Tier: kerneltest.Tier(t), Netns: uint32(ns.Inode()), Port: a.Port()})
	if err != nil {
		t.Skipf("tier not available: %v", err)
	}
	defer tr.Close()
	for _, l := range []*netlab.Listener{a, b} {
		res, err := ns.DialMany(context.Background(), l.Addr().String(), 3, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Close()
		if err := l.WaitQueue(3, 2*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	var n int
	if err := tr.Read(ctx, func(ev *tracer.Event) {
		if ev.Kind == tracer.KindEnqueue {
			n++
		}
		if ev.Port != a.Port() {
			t.Errorf("%s event of port %d passed a filter for port %d", ev.Kind, ev.Port, a.Port())
		}
	}); err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("%d enqueue events on port %d, want 3", n, a.Port())
	}
}
