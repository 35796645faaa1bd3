package exporter

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/synq-trace/synq/internal/ledger"
	"github.com/synq-trace/synq/internal/netstat"
	"github.com/synq-trace/synq/tracer"
)

// listenIn adds a listener on 127.0.0.1:port of namespace ns.
func (f *fakeSource) listenIn(id tracer.ListenerID, ns uint32, port uint16) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ls[id] = tracer.Listener{ID: id, Inode: uint64(id) * 10,
		Endpoint:       tracer.Endpoint{Netns: ns, Addr: netip.MustParseAddr("127.0.0.1"), Port: port},
		AcceptQueueMax: 128}
}

// setMIB sets a counter of namespace ns.
func (f *fakeSource) setMIB(ns uint32, key string, v int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mib == nil {
		f.mib = map[uint32]netstat.Snapshot{}
	}
	if f.mib[ns] == nil {
		f.mib[ns] = netstat.Snapshot{"TcpExt.ListenDrops": 0, "TcpExt.ListenOverflows": 0, "TcpExt.TCPReqQFullDrop": 0,
			"TcpExt.SyncookiesSent": 0, "Tcp.PassiveOpens": 0}
	}
	f.mib[ns][key] = v
}

// Every namespace with an exported listener gets its own kernel counters and
// coverage, against its own listeners only; a namespace that appears later
// (a pod started) has its baseline when synq first reads it, and what its
// listener counted before that is not held against it.
func TestPerNetnsKernel(t *testing.T) {
	const podA, podB = 4026532101, 4026532102
	f := newFake(fentryInfo())
	f.kernel["TcpExt.ListenDrops"] = 50 // the host: before synq started
	f.listen(1, 8001)
	f.listenIn(2, podA, 8080)
	f.setMIB(podA, "TcpExt.ListenDrops", 7)
	e, _ := newTestExporter(t, f, Options{})

	// Drops in pod A only.
	f.update(2, func(c *tracer.Counts) { c.AckOverflow = 4 })
	f.setMIB(podA, "TcpExt.ListenDrops", 11)
	f.setMIB(podA, "TcpExt.ListenOverflows", 4)
	m := scrape(t, e)
	nsCov := func(ns uint32, c string) string {
		return fmt.Sprintf("synq_reconcile_coverage_ratio{counter=%s,netns=%d}", c, ns)
	}
	kern := func(ns uint32) string {
		return fmt.Sprintf("synq_kernel_netstat_total{name=TcpExt_ListenDrops,netns=%d}", ns)
	}
	for id, want := range map[string]float64{
		kern(testNetns): 50, kern(podA): 11,
		nsCov(testNetns, "ListenDrops"): 1, nsCov(podA, "ListenDrops"): 1, nsCov(podA, "ListenOverflows"): 1,
	} {
		if got, ok := m[id]; !ok || got != want {
			t.Errorf("%s = %v (found %v), want %v", id, got, ok, want)
		}
	}

	// Pod B appears with a listener that dropped 3 before synq saw it:
	// in its kernel baseline, not in its coverage.
	f.listenIn(3, podB, 8080)
	f.update(3, func(c *tracer.Counts) { c.AckOverflow = 3 })
	f.setMIB(podB, "TcpExt.ListenDrops", 3)
	m = scrape(t, e)
	if got := m[nsCov(podB, "ListenDrops")]; got != 1 {
		t.Errorf("pod B at its baseline: coverage %v, want 1 (0 of 0)", got)
	}
	f.update(3, func(c *tracer.Counts) { c.AckOverflow = 5 })
	f.setMIB(podB, "TcpExt.ListenDrops", 5)
	f.setMIB(podB, "TcpExt.ListenOverflows", 2)
	m = scrape(t, e)
	if got := m[nsCov(podB, "ListenDrops")]; got != 1 {
		t.Errorf("pod B: coverage %v, want 2/2", got)
	}
	if got := m[kern(podB)]; got != 5 {
		t.Errorf("pod B kernel ListenDrops %v, want 5", got)
	}
	// A drop the listener did not see (another listener of the namespace
	// that synq could not name would be the same): coverage says so.
	f.setMIB(podA, "TcpExt.ListenDrops", 12)
	if got := scrape(t, e)[nsCov(podA, "ListenDrops")]; got != 4.0/5 {
		t.Errorf("pod A: coverage %v, want 4/5", got)
	}
	// The host's coverage never counted the pods' drops.
	if got := m[nsCov(testNetns, "ListenDrops")]; got != 1 {
		t.Errorf("host coverage %v, want 1 (no drop there)", got)
	}

	// The namespace goes: its series go with it.
	f.close(3)
	f.mu.Lock()
	delete(f.mib, podB)
	f.mu.Unlock()
	if _, ok := scrape(t, e)[kern(podB)]; ok {
		t.Errorf("pod B gone, its kernel counters still exported")
	}
}

// Kernel counters are exported for the reconciled namespace and the
// namespaces of listeners with series of their own: a namespace whose
// listeners are all folded is not (--max-listeners bounds them), but its
// drops still count in its coverage when it comes back.
func TestPerNetnsKernelBounded(t *testing.T) {
	const busy, quiet = 4026532201, 4026532202
	f := newFake(fentryInfo())
	f.listenIn(1, busy, 80)
	f.listenIn(2, quiet, 80)
	f.setMIB(busy, "TcpExt.ListenDrops", 0)
	f.setMIB(quiet, "TcpExt.ListenDrops", 0)
	e, _ := newTestExporter(t, f, Options{MaxListeners: 1})
	f.update(1, func(c *tracer.Counts) { c.Enqueue = 100 })
	f.update(2, func(c *tracer.Counts) { c.AckOverflow = 1 })
	f.setMIB(quiet, "TcpExt.ListenDrops", 1)
	m := scrape(t, e)
	var nets []string
	for _, l := range listenersOf(m, "synq_kernel_netstat_total") {
		if len(l) > 0 && l[:len("name=TcpExt_ListenDrops")] == "name=TcpExt_ListenDrops" {
			nets = append(nets, l)
		}
	}
	want := []string{fmt.Sprintf("name=TcpExt_ListenDrops,netns=%d", testNetns), fmt.Sprintf("name=TcpExt_ListenDrops,netns=%d", busy)}
	if fmt.Sprint(nets) != fmt.Sprint(want) {
		t.Errorf("kernel counters of %v, want %v (quiet's listener is folded)", nets, want)
	}
}

// selectingFake is a fakeSource whose walk reads the counters of the
// namespaces the exporter selects only, as KernelSource's does, and counts
// the reads per namespace.
type selectingFake struct {
	*fakeSource
	want  func(uint32) bool
	reads map[uint32]int
}

func (s *selectingFake) SelectMIB(want func(uint32) bool) { s.want = want }

func (s *selectingFake) Walk() (*ledger.View, error) {
	v, err := s.fakeSource.Walk()
	for i := range v.Netns {
		n := &v.Netns[i]
		if s.want != nil && !s.want(uint32(n.NS.Inode)) {
			n.MIB = nil
		} else if n.MIB != nil {
			s.reads[uint32(n.NS.Inode)]++
		}
	}
	return v, err
}

// The walk reads the counters of every namespace once, for the baselines,
// then of the exported ones only: a node with many pods does not pay for
// the namespaces whose listeners are folded.
func TestPerNetnsKernelReadsExportedOnly(t *testing.T) {
	const busy, quiet = 4026532301, 4026532302
	f := newFake(fentryInfo())
	f.listenIn(1, busy, 80)
	f.listenIn(2, quiet, 80)
	f.setMIB(busy, "TcpExt.ListenDrops", 0)
	f.setMIB(quiet, "TcpExt.ListenDrops", 0)
	s := &selectingFake{fakeSource: f, reads: map[uint32]int{}}
	e, clk := newTestExporter(t, s, Options{MaxListeners: 1})
	f.update(1, func(c *tracer.Counts) { c.Enqueue = 100 })
	f.update(2, func(c *tracer.Counts) { c.AckOverflow = 2 })
	f.setMIB(quiet, "TcpExt.ListenDrops", 2)
	for range 3 {
		scrape(t, e)
	}
	if s.reads[busy] != 3 || s.reads[quiet] != 1 || s.reads[testNetns] != 4 {
		t.Errorf("counter reads %v: want busy 3 (baseline, then exported from the second scrape), quiet 1 (baseline only), the reconciled 4", s.reads)
	}
	// Its listener gets a slot: its counters are read again, against the
	// baseline of synq's start, and its coverage covers the drops it had
	// while folded.
	clk.advance(2 * time.Minute) // busy held its slot long enough
	f.update(2, func(c *tracer.Counts) { c.AckOverflow, c.Enqueue = 2, 10000 })
	scrape(t, e)
	m := scrape(t, e)
	if got := m[fmt.Sprintf("synq_reconcile_coverage_ratio{counter=ListenDrops,netns=%d}", quiet)]; got != 1 {
		t.Errorf("quiet's coverage after it got a slot: %v, want 2/2 (%v)", got, listenersOf(m, "synq_reconcile_coverage_ratio"))
	}
}
