package exporter

import (
	"fmt"
	"maps"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/synq-trace/synq/internal/aggregate"
	khist "github.com/synq-trace/synq/internal/hist"
	"github.com/synq-trace/synq/internal/ledger"
	"github.com/synq-trace/synq/internal/netstat"
	"github.com/synq-trace/synq/tracer"
	"golang.org/x/sys/unix"
)

// fakeSource is a kernel the test writes: listeners, counters, losses.
type fakeSource struct {
	mu     sync.Mutex
	info   tracer.Info
	ls     map[tracer.ListenerID]tracer.Listener
	counts map[tracer.ListenerID]tracer.Counts
	hists  map[tracer.ListenerID]*tracer.Histogram
	stats  tracer.Stats
	kernel netstat.Snapshot // of testNetns
	// mib are the counters of the other namespaces (none: unreadable).
	mib map[uint32]netstat.Snapshot
	// owners of the listening sockets, by inode, and how the lookup went.
	owners      map[uint64][]aggregate.Owner
	ownerReport OwnerReport
	lookups     int
	// denied are namespaces the walk finds but may not enter.
	denied []uint32
}

const testNetns = 4026532000

// fentryInfo is a fentry tier whose hooks produce every kind.
func fentryInfo() tracer.Info {
	var hooks []tracer.HookStatus
	for _, p := range []string{"tp_synack_retrans", "fx_syn_recv4_a6", "fx_accept_a2", "fe_cookie_v4"} {
		hooks = append(hooks, tracer.HookStatus{Program: p})
	}
	return tracer.Info{Tier: tracer.TierFentry, Kernel: "6.18.0-test", Hooks: hooks, ExactListenDrops: true}
}

func tracepointInfo() tracer.Info {
	var hooks []tracer.HookStatus
	for _, p := range []string{"tp_synack_retrans", "tp_set_state", "tp_data_ready", "tp_kfree_skb", "tp_exit_accept4"} {
		hooks = append(hooks, tracer.HookStatus{Program: p})
	}
	return tracer.Info{Tier: tracer.TierTracepoint, Kernel: "6.18.0-test", Hooks: hooks, ExactListenDrops: true}
}

func newFake(info tracer.Info) *fakeSource {
	return &fakeSource{info: info, ls: map[tracer.ListenerID]tracer.Listener{}, counts: map[tracer.ListenerID]tracer.Counts{},
		hists: map[tracer.ListenerID]*tracer.Histogram{}, owners: map[uint64][]aggregate.Owner{},
		kernel: netstat.Snapshot{"TcpExt.ListenDrops": 0, "TcpExt.ListenOverflows": 0, "TcpExt.TCPReqQFullDrop": 0,
			"TcpExt.SyncookiesSent": 0, "Tcp.PassiveOpens": 0}}
}

func (f *fakeSource) Info() tracer.Info { return f.info }

func (f *fakeSource) Counts() (map[tracer.ListenerID]tracer.Counts, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[tracer.ListenerID]tracer.Counts{}
	for k, v := range f.counts {
		out[k] = v
	}
	return out, nil
}

func (f *fakeSource) Histograms() (map[tracer.ListenerID]*tracer.Histogram, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[tracer.ListenerID]*tracer.Histogram{}
	for k, v := range f.hists {
		h := *v
		out[k] = &h
	}
	return out, nil
}

func (f *fakeSource) Stats() (tracer.Stats, error) { return f.stats, nil }

// accepted records accepts of listener id with these latencies in its kernel
// histogram, as the BPF programs do.
func (f *fakeSource) accepted(id tracer.ListenerID, lat ...time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := f.hists[id]
	if h == nil {
		h = &tracer.Histogram{}
		f.hists[id] = h
	}
	for _, d := range lat {
		h.Latency[min(khist.Index(tracer.HistPrecision, uint64(d)), tracer.LatencyBuckets-1)]++
		h.LatencySum += d
	}
}

// Walk lists testNetns (always), every namespace with a listener or
// counters, with the counters of each.
func (f *fakeSource) Walk() (*ledger.View, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	byNetns := map[uint32][]tracer.Listener{testNetns: {}}
	for _, l := range f.ls {
		byNetns[l.Netns] = append(byNetns[l.Netns], l)
	}
	for ino := range f.mib {
		byNetns[ino] = append(byNetns[ino], nil...)
	}
	v := &ledger.View{}
	for ino, ls := range byNetns {
		mib := f.mib[ino]
		if ino == testNetns {
			mib = f.kernel
		}
		if mib != nil {
			mib = maps.Clone(mib)
		}
		v.Netns = append(v.Netns, ledger.NetnsView{NS: ledger.Namespace{Inode: uint64(ino)}, Listeners: ls, MIB: mib})
	}
	for _, ino := range f.denied {
		v.Netns = append(v.Netns, ledger.NetnsView{NS: ledger.Namespace{Inode: uint64(ino)},
			Err: fmt.Errorf("enter net:[%d]: %w", ino, unix.EPERM)})
	}
	return v, nil
}

func (f *fakeSource) Owners(_ time.Time, inodes map[uint64]bool) (map[uint64][]aggregate.Owner, OwnerReport) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lookups++
	out := map[uint64][]aggregate.Owner{}
	for ino := range inodes {
		if o, ok := f.owners[ino]; ok {
			out[ino] = o
		}
	}
	return out, f.ownerReport
}

// listen adds a listener on 127.0.0.1:port of testNetns with backlog 128.
func (f *fakeSource) listen(id tracer.ListenerID, port uint16) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ls[id] = tracer.Listener{ID: id, Inode: uint64(id) * 10,
		Endpoint:       tracer.Endpoint{Netns: testNetns, Addr: netip.MustParseAddr("127.0.0.1"), Port: port},
		AcceptQueueMax: 128}
}

func (f *fakeSource) close(id tracer.ListenerID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.ls, id)
}

func (f *fakeSource) update(id tracer.ListenerID, fn func(c *tracer.Counts)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.counts[id]
	fn(&c)
	f.counts[id] = c
}

func (f *fakeSource) setListener(id tracer.ListenerID, fn func(l *tracer.Listener)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.ls[id]
	fn(&l)
	f.ls[id] = l
}

// clock is a settable time.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTestExporter(t *testing.T, src Source, opts Options) (*Exporter, *clock) {
	t.Helper()
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	opts.Now = clk.now
	opts.ReconciledNetns = testNetns
	opts.Logf = t.Logf
	e, err := New(src, opts)
	if err != nil {
		t.Fatal(err)
	}
	return e, clk
}

// scrape gathers e through a registry (which checks the metrics against
// their descriptors) and indexes the samples "name{l=v,...}".
// gather scrapes e through a pedantic registry.
func gather(t *testing.T, e *Exporter) []*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(e)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

func scrape(t *testing.T, e *Exporter) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, mf := range gather(t, e) {
		for _, m := range mf.GetMetric() {
			id := sampleID(mf.GetName(), m.GetLabel())
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				out[id] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[id] = m.GetGauge().GetValue()
			case dto.MetricType_UNTYPED:
				out[id] = m.GetUntyped().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[id] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

func sampleID(name string, lps []*dto.LabelPair) string {
	var ls []string
	for _, lp := range lps {
		ls = append(ls, lp.GetName()+"="+lp.GetValue())
	}
	sort.Strings(ls)
	return name + "{" + strings.Join(ls, ",") + "}"
}

func lid(port uint16) string {
	return fmt.Sprintf("addr=127.0.0.1,container=,namespace=,netns=%d,pod=,port=%d", testNetns, port)
}

const otherID = "addr=other,container=,namespace=,netns=other,pod=,port=other"

// sum adds every sample of a metric.
func sum(m map[string]float64, name string) float64 {
	var s float64
	for k, v := range m {
		if strings.HasPrefix(k, name+"{") {
			s += v
		}
	}
	return s
}

// listenersOf lists the listener label sets a metric has samples for.
func listenersOf(m map[string]float64, name string) []string {
	var out []string
	for k := range m {
		if strings.HasPrefix(k, name+"{") {
			out = append(out, strings.TrimSuffix(strings.TrimPrefix(k, name+"{"), "}"))
		}
	}
	sort.Strings(out)
	return out
}

// checkMonotonic fails if any counter went down between two scrapes.
func checkMonotonic(t *testing.T, before, after map[string]float64) {
	t.Helper()
	for k, v := range before {
		if !strings.Contains(k, "_total{") {
			continue
		}
		if w, ok := after[k]; ok && w < v {
			t.Errorf("%s went down: %v -> %v", k, v, w)
		}
	}
}

// cov is the coverage sample of counter in testNetns.
func cov(counter string) string {
	return fmt.Sprintf("synq_reconcile_coverage_ratio{counter=%s,netns=%d}", counter, testNetns)
}
