package exporter

import (
	"math"
	"net/netip"
	"slices"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/synq-trace/synq/tracer"
)

const enq = "synq_enqueued_total"

// Three listeners, two slots: the busiest two get series, the third is
// folded into "other". Every increment lands in exactly one series: the
// exported series plus what a demoted one had exported when it stopped (its
// series goes stale, like a closed listener's) add up to the kernel's total.
func TestFoldTopN(t *testing.T) {
	f := newFake(fentryInfo())
	for id, port := range map[tracer.ListenerID]uint16{1: 8001, 2: 8002, 3: 8003} {
		f.listen(id, port)
	}
	e, clk := newTestExporter(t, f, Options{MaxListeners: 2, Hold: time.Minute, HalfLife: 30 * time.Second})
	var total uint64
	add := func(id tracer.ListenerID, n uint64) {
		f.update(id, func(c *tracer.Counts) { c.Enqueue += n })
		total += n
	}
	add(1, 100)
	add(2, 50)
	add(3, 1)
	m := scrape(t, e)
	if got, want := listenersOf(m, enq), []string{lid(8001), lid(8002), otherID}; !slices.Equal(got, want) {
		t.Fatalf("series %v, want %v", got, want)
	}
	if m[enq+"{"+otherID+"}"] != 1 || m[enq+"{"+lid(8001)+"}"] != 100 {
		t.Errorf("other %v, :8001 %v: want 1 and 100", m[enq+"{"+otherID+"}"], m[enq+"{"+lid(8001)+"}"])
	}
	if sum(m, enq) != float64(total) {
		t.Errorf("sum %v, kernel total %d", sum(m, enq), total)
	}
	// Gauges of the folded listener are summed into other's.
	if m["synq_accept_queue_max{"+otherID+"}"] != 128 {
		t.Errorf("other accept_queue_max %v, want 128", m["synq_accept_queue_max{"+otherID+"}"])
	}

	// :8003 gets busy, but :8002 holds its slot for Hold.
	clk.advance(30 * time.Second)
	add(3, 1000)
	add(2, 1)
	m2 := scrape(t, e)
	checkMonotonic(t, m, m2)
	if got := listenersOf(m2, enq); slices.Contains(got, lid(8003)) {
		t.Errorf(":8003 promoted before the holder's Hold passed: %v", got)
	}
	if m2[enq+"{"+otherID+"}"] != 1001 {
		t.Errorf("other %v, want 1001", m2[enq+"{"+otherID+"}"])
	}

	// Past Hold, :8003 (1000 recent events) takes the slot of :8002 (a
	// few), and from then on only its own increments show in its series.
	clk.advance(31 * time.Second)
	add(3, 10)
	add(2, 5)
	m3 := scrape(t, e)
	checkMonotonic(t, m2, m3)
	if got, want := listenersOf(m3, enq), []string{lid(8001), lid(8003), otherID}; !slices.Equal(got, want) {
		t.Fatalf("series %v, want %v", got, want)
	}
	if m3[enq+"{"+lid(8003)+"}"] != 10 {
		t.Errorf(":8003 series %v, want the 10 counted since promotion", m3[enq+"{"+lid(8003)+"}"])
	}
	if m3[enq+"{"+otherID+"}"] != 1006 {
		t.Errorf("other %v, want 1001 + :8002's 5 since demotion", m3[enq+"{"+otherID+"}"])
	}
	demoted := m2[enq+"{"+lid(8002)+"}"]
	if sum(m3, enq)+demoted != float64(total) {
		t.Errorf("sum %v + demoted %v, kernel total %d", sum(m3, enq), demoted, total)
	}

	// A quiet listener is not promoted over a busy one, however long.
	for i := 0; i < 5; i++ {
		clk.advance(time.Minute)
		add(1, 100)
		add(3, 100)
		add(2, 1)
		m4 := scrape(t, e)
		checkMonotonic(t, m3, m4)
		if got, want := listenersOf(m4, enq), []string{lid(8001), lid(8003), otherID}; !slices.Equal(got, want) {
			t.Fatalf("round %d: series %v, want %v", i, got, want)
		}
		if sum(m4, enq)+demoted != float64(total) {
			t.Errorf("sum %v + demoted %v, kernel total %d", sum(m4, enq), demoted, total)
		}
		m3 = m4
	}
}

// A listener that closed stays exported (frozen, without gauges) for Expire,
// then its series go; "other" appears only once something is folded.
func TestExpire(t *testing.T) {
	f := newFake(fentryInfo())
	f.listen(1, 8001)
	f.listen(2, 8002)
	e, clk := newTestExporter(t, f, Options{MaxListeners: 10, Expire: 5 * time.Minute})
	f.update(1, func(c *tracer.Counts) { c.Enqueue, c.AckOverflow = 7, 2 })
	m := scrape(t, e)
	if len(listenersOf(m, enq)) != 2 || m["synq_accept_queue_max{"+lid(8001)+"}"] != 128 {
		t.Fatalf("want two listeners with gauges: %v", m)
	}
	if _, ok := m[enq+"{"+otherID+"}"]; ok {
		t.Errorf("an \"other\" series without anything folded")
	}

	f.close(1) // its counter map entry lingers, as the kernel's LRU map does
	clk.advance(time.Minute)
	m = scrape(t, e)
	if m[enq+"{"+lid(8001)+"}"] != 7 || m["synq_listen_drops_total{"+lid(8001)+",reason=ack-overflow}"] != 2 {
		t.Errorf("closed listener not exported frozen: %v", m)
	}
	if _, ok := m["synq_accept_queue_length{"+lid(8001)+"}"]; ok {
		t.Errorf("closed listener still has queue gauges")
	}
	clk.advance(4*time.Minute + time.Second)
	m = scrape(t, e)
	if got := listenersOf(m, enq); !slices.Equal(got, []string{lid(8002)}) {
		t.Errorf("after Expire: series %v, want only :8002", got)
	}

	// An idle listener that is still open never expires.
	clk.advance(time.Hour)
	if got := listenersOf(scrape(t, e), enq); !slices.Equal(got, []string{lid(8002)}) {
		t.Errorf("an open idle listener expired: %v", got)
	}

	// The closed one's lingering map entry does not resurrect it; a new
	// socket on the same port continues nothing and starts a fresh series.
	f.listen(1, 8001)
	f.setListener(1, func(l *tracer.Listener) { l.Inode = 999 })
	f.update(1, func(c *tracer.Counts) { c.Enqueue += 3 })
	m = scrape(t, e)
	if m[enq+"{"+lid(8001)+"}"] != 3 {
		t.Errorf("new socket at a reused kernel address: %v, want its own 3", m[enq+"{"+lid(8001)+"}"])
	}
}

// A server restart: a new socket (new inode, maybe the same kernel address)
// on the same port continues the series, which never goes backwards.
func TestRestartContinuesSeries(t *testing.T) {
	f := newFake(fentryInfo())
	f.listen(1, 8001)
	e, clk := newTestExporter(t, f, Options{})
	f.update(1, func(c *tracer.Counts) { c.DropAcceptQueue = 4 })
	m := scrape(t, e)
	f.close(1)
	f.listen(2, 8001) // new kernel address
	f.update(2, func(c *tracer.Counts) { c.DropAcceptQueue = 1 })
	clk.advance(15 * time.Second)
	m2 := scrape(t, e)
	checkMonotonic(t, m, m2)
	id := "synq_listen_drops_total{" + lid(8001) + ",reason=accept-queue-full}"
	if m2[id] != 5 {
		t.Errorf("%s = %v, want 4 + 1", id, m2[id])
	}
	// The same kernel address reused by the next restart.
	f.close(2)
	f.listen(2, 8001)
	f.setListener(2, func(l *tracer.Listener) { l.Inode = 777 })
	f.update(2, func(c *tracer.Counts) { c.DropAcceptQueue += 2 })
	clk.advance(15 * time.Second)
	m3 := scrape(t, e)
	checkMonotonic(t, m2, m3)
	if m3[id] != 7 {
		t.Errorf("%s = %v, want 7", id, m3[id])
	}
}

// The tracepoint tier: SYN-side drops are ListenDrops (sk_drops between
// snapshots, minus tcp_v4_rcv drops) minus ack-overflows.
func TestTracepointSynSide(t *testing.T) {
	f := newFake(tracepointInfo())
	f.listen(1, 8001)
	f.setListener(1, func(l *tracer.Listener) { l.SkDrops = 10 }) // before synq started
	e, _ := newTestExporter(t, f, Options{})
	f.setListener(1, func(l *tracer.Listener) { l.SkDrops = 25 })
	f.update(1, func(c *tracer.Counts) { c.AckOverflow, c.RcvDrops = 5, 3 })
	// Opened after synq started: every sk_drops is since then.
	f.listen(2, 8002)
	f.setListener(2, func(l *tracer.Listener) { l.SkDrops = 4 })
	m := scrape(t, e)
	for id, want := range map[string]float64{
		"synq_listen_drops_total{" + lid(8001) + ",reason=syn-side}":     25 - 10 - 3 - 5,
		"synq_listen_drops_total{" + lid(8001) + ",reason=ack-overflow}": 5,
		"synq_listen_drops_total{" + lid(8002) + ",reason=syn-side}":     4,
	} {
		if m[id] != want {
			t.Errorf("%s = %v, want %v", id, m[id], want)
		}
	}
	for _, absent := range []string{"synq_syn_total", "synq_syn_cookies_total"} {
		if len(listenersOf(m, absent)) > 0 {
			t.Errorf("%s exported on the tracepoint tier, which cannot see it", absent)
		}
	}
	if _, ok := m[cov("ListenOverflows")]; ok {
		t.Errorf("ListenOverflows coverage on the tracepoint tier, which sees only part of it")
	}
}

// Final ACKs that failed for another reason than a full queue are
// ListenDrops too: the tracepoint tier's ListenDrops coverage counts them
// (it used to leave them out: 8 of 10 here, reported as 80%).
func TestTracepointCoverageAckOther(t *testing.T) {
	f := newFake(tracepointInfo())
	f.listen(1, 8001)
	e, _ := newTestExporter(t, f, Options{})
	f.setListener(1, func(l *tracer.Listener) { l.SkDrops = 10 })
	f.update(1, func(c *tracer.Counts) { c.AckOverflow, c.AckOther = 4, 2 })
	f.mu.Lock()
	f.kernel["TcpExt.ListenDrops"] = 10
	f.mu.Unlock()
	m := scrape(t, e)
	if got := m[cov("ListenDrops")]; got != 1 {
		t.Errorf("ListenDrops coverage %v, want 10/10", got)
	}
	if got := m["synq_listen_drops_total{"+lid(8001)+",reason=syn-side}"]; got != 4 {
		t.Errorf("syn-side drops %v, want 10 − 4 − 2", got)
	}
}

// Coverage: drops attributed to listeners of the reconciled namespace over
// the kernel's counter increase since the start.
func TestCoverage(t *testing.T) {
	f := newFake(fentryInfo())
	f.kernel["TcpExt.ListenDrops"] = 1000 // before synq started
	f.listen(1, 8001)
	e, _ := newTestExporter(t, f, Options{})
	m := scrape(t, e)
	if m[cov("ListenDrops")] != 1 {
		t.Errorf("no drops either side: coverage %v, want 1", m[cov("ListenDrops")])
	}
	f.update(1, func(c *tracer.Counts) { c.DropSynQueue, c.AckOverflow = 3, 3 })
	f.mu.Lock()
	f.kernel["TcpExt.ListenDrops"] = 1008
	f.kernel["TcpExt.TCPReqQFullDrop"] = 3
	f.mu.Unlock()
	m = scrape(t, e)
	if got := m[cov("ListenDrops")]; got != 0.75 {
		t.Errorf("coverage %v, want 6/8", got)
	}
	if got := m[cov("TCPReqQFullDrop")]; got != 1 {
		t.Errorf("TCPReqQFullDrop coverage %v, want 1", got)
	}
	if got := m["synq_kernel_netstat_total{name=TcpExt_ListenDrops,netns=4026532000}"]; got != 1008 {
		t.Errorf("kernel counter %v, want 1008", got)
	}
	if got := m[cov("SyncookiesSent")]; got != 1 {
		t.Errorf("SyncookiesSent coverage with no cookies %v, want 1", got)
	}
	f.update(1, func(c *tracer.Counts) { c.Cookie = 2 })
	if got := scrape(t, e)[cov("SyncookiesSent")]; !math.IsInf(got, 1) {
		t.Errorf("cookies the kernel did not count: coverage %v, want +Inf", got)
	}
}

// Counters of sockets that no snapshot shows (listener 0 of the tracepoint
// tier's unattributed enqueues, a namespace synq cannot enter) are folded,
// never lost.
func TestUnknownListenerFolded(t *testing.T) {
	f := newFake(fentryInfo())
	e, _ := newTestExporter(t, f, Options{})
	f.update(0, func(c *tracer.Counts) { c.Enqueue = 9 })
	if got := scrape(t, e)[enq+"{"+otherID+"}"]; got != 9 {
		t.Errorf("other %v, want 9", got)
	}
}

// Accept latencies come from the kernel's histograms: each listener's land
// in its series, or other's when folded; only what the kernel added since the
// last scrape is added; the sum is exact; a latency is never counted in a
// bucket below it, and at most one kernel bucket (25%) above.
func TestLatencyHistogram(t *testing.T) {
	f := newFake(fentryInfo())
	f.listen(1, 8001)
	f.listen(2, 8002)
	e, _ := newTestExporter(t, f, Options{MaxListeners: 1})
	f.update(1, func(c *tracer.Counts) { c.Accept = 3 })
	// 99 µs is in the kernel bucket [98304, 114688) ns, which straddles the
	// 100 µs bound: counted above it. 90 µs is in [81920, 98304): below.
	f.accepted(1, 300*time.Millisecond, 99*time.Microsecond, 90*time.Microsecond)
	f.accepted(2, 300*time.Millisecond)
	m := scrape(t, e)
	if m["synq_accept_latency_seconds{"+lid(8001)+"}"] != 3 || m["synq_accept_latency_seconds{"+otherID+"}"] != 1 {
		t.Errorf("histogram counts: %v", m)
	}
	h := histOf(t, e, lid(8001))
	if want := (300*time.Millisecond + 99*time.Microsecond + 90*time.Microsecond).Seconds(); math.Abs(h.GetSampleSum()-want) > 1e-12 {
		t.Errorf("sum %v, want %v", h.GetSampleSum(), want)
	}
	for _, b := range h.GetBucket() {
		var want uint64
		// kernel buckets: 90 µs in [81.92, 98.304) µs, 99 µs in
		// [98.304, 114.688) µs, 300 ms in [268.4, 335.5) ms
		switch ub := b.GetUpperBound(); {
		case ub >= 0.5:
			want = 3
		case ub >= 0.00025:
			want = 2
		case ub >= 0.0001:
			want = 1 // 90 µs; 99 µs is counted above 100 µs
		}
		if b.GetCumulativeCount() != want {
			t.Errorf("bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
		}
	}

	// The next scrape adds only what the kernel added; an evicted and
	// restarted entry (counts that shrank) is taken as all new.
	f.accepted(1, time.Millisecond)
	if h := histOf(t, e, lid(8001)); h.GetSampleCount() != 4 {
		t.Errorf("after one more accept: count %d, want 4", h.GetSampleCount())
	}
	f.mu.Lock()
	f.hists[1] = &tracer.Histogram{}
	f.mu.Unlock()
	f.accepted(1, 2*time.Millisecond)
	if h := histOf(t, e, lid(8001)); h.GetSampleCount() != 5 {
		t.Errorf("after eviction and one accept: count %d, want 5", h.GetSampleCount())
	}
}

// histOf scrapes the accept latency histogram of one listener.
func histOf(t *testing.T, e *Exporter, labels string) *dto.Histogram {
	t.Helper()
	for _, mf := range gather(t, e) {
		if mf.GetName() != "synq_accept_latency_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if sampleID(mf.GetName(), m.GetLabel()) == mf.GetName()+"{"+labels+"}" {
				return m.GetHistogram()
			}
		}
	}
	t.Fatalf("no synq_accept_latency_seconds{%s}", labels)
	return nil
}

// A listener no snapshot shows (it lived between two scrapes, or in a
// namespace synq cannot enter) is named by its events: its counters go to
// its own series, not to "other".
func TestEventsNameListeners(t *testing.T) {
	f := newFake(fentryInfo())
	e, _ := newTestExporter(t, f, Options{})
	f.update(7, func(c *tracer.Counts) { c.Enqueue, c.AckOverflow = 5, 2 })
	ep := tracer.Endpoint{Netns: testNetns, Addr: netip.MustParseAddr("127.0.0.1"), Port: 8007}
	e.Observe(&tracer.Event{Kind: tracer.KindAckOverflow, Listener: 7, Endpoint: ep})
	m := scrape(t, e)
	if m[enq+"{"+lid(8007)+"}"] != 5 || m["synq_listen_drops_total{"+lid(8007)+",reason=ack-overflow}"] != 2 {
		t.Errorf("counters of a listener named by an event: %v", m)
	}
	if _, ok := m[enq+"{"+otherID+"}"]; ok {
		t.Errorf("\"other\" without anything folded: %v", m)
	}
}
