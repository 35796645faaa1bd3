package exporter

import (
	"fmt"
	"math"
	"sort"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/synq-trace/synq/internal/ledger"
	"github.com/synq-trace/synq/internal/netstat"
	"github.com/synq-trace/synq/tracer"
)

// nsKernel is one network namespace's kernel counters, read by the walk in
// the same visit as its listeners (ledger.Walker.MIB), and what synq
// attributed to its listeners since its baseline.
//
// The baseline is the first walk that read the namespace's counters. That
// walk's listener deltas are not attributed: they may hold what the
// listeners counted before it (a pod's namespace created, and its listener
// dropping, between two scrapes), which the baseline already holds. From the
// next refresh on, every delta of its listeners is, so both sides cover the
// same window (to the few microseconds between a walk's counter read and the
// tracer's map read after it).
type nsKernel struct {
	name      string           // under /run/netns, "" if none
	base, now netstat.Snapshot // now: nil when this scrape could not read it
	gen       uint64           // the refresh that took base
	synq      values           // attributed to its listeners since base
}

// kernelKeys are the counters a namespace's state keeps: what
// synq_kernel_netstat_* export and what coverage compares.
var kernelKeys = func() map[string]bool {
	m := map[string]bool{}
	for _, k := range kernelSet {
		m[k] = true
	}
	for _, c := range ledger.Coverage(tracer.Capabilities{SynSide: true}, tracer.Counts{}, 0) {
		m[c.Key] = true
	}
	return m
}()

func keep(s netstat.Snapshot) netstat.Snapshot {
	out := make(netstat.Snapshot, len(kernelKeys))
	for k := range kernelKeys {
		if v, ok := s[k]; ok {
			out[k] = v
		}
	}
	return out
}

// mibSelector is a Source whose walk can read the counters of some
// namespaces only (KernelSource).
type mibSelector interface {
	SelectMIB(want func(netns uint32) bool)
}

// wantMIB says whose counters the walk reads: every namespace's at the
// baseline (New), then those exported (the reconciled namespace and those
// of listeners with a slot, as the last refresh left them). Reading a
// namespace's counters costs about as much as listing its listeners (the
// kernel sums every counter over the CPUs): a node with many pods pays it for
// the exported namespaces only. Called inside the walk, with e.mu held.
func (e *Exporter) wantMIB(netns uint32) bool {
	return e.gen == 0 || netns == e.opts.ReconciledNetns || e.slottedNetns[netns]
}

// noteSlotted remembers the namespaces of the listeners with a slot, for
// the next walk.
func (e *Exporter) noteSlotted() {
	clear(e.slottedNetns)
	for _, se := range e.series {
		if se.slotted {
			e.slottedNetns[se.netns] = true
		}
	}
}

// readKernel takes each namespace's counters from the walk v (nil: the walk
// failed). A namespace the walk no longer finds is forgotten.
func (e *Exporter) readKernel(v *ledger.View) {
	for _, st := range e.kernel {
		st.now = nil
	}
	var selfErr error = errNotWalked
	if v != nil {
		seen := map[uint32]bool{}
		for _, n := range v.Netns {
			ino := uint32(n.NS.Inode)
			seen[ino] = true
			if n.Err != nil || n.MIB == nil {
				if ino == e.opts.ReconciledNetns && n.Err != nil {
					selfErr = n.Err
				}
				continue
			}
			e.health.read(SourceNetstat, nil)
			if ino == e.opts.ReconciledNetns {
				selfErr = nil
			}
			st := e.kernel[ino]
			if st == nil {
				st = &nsKernel{base: keep(n.MIB), gen: e.gen}
				e.kernel[ino] = st
			}
			st.name, st.now = n.NS.Name, keep(n.MIB)
		}
		for ino := range e.kernel {
			if !seen[ino] {
				delete(e.kernel, ino)
			}
		}
	}
	if selfErr != nil {
		// Reconciled namespace unreadable: degraded, not fatal (its
		// listeners still count).
		e.health.read(SourceNetstat, fmt.Errorf("kernel counters of netns %d: %w", e.opts.ReconciledNetns, selfErr))
		e.logf("kernel counters of netns %d: %v (no synq_kernel_netstat_* for it, no reconciliation)", e.opts.ReconciledNetns, selfErr)
	}
}

var errNotWalked = fmt.Errorf("not listed by the walk")

// attribute adds a listener's deltas to its namespace's, once its baseline
// is older than this refresh.
func (e *Exporter) attribute(netns uint32, d *values) {
	if st := e.kernel[netns]; st != nil && st.gen < e.gen {
		st.synq.add(d)
	}
}

// exportedNetns are the namespaces whose kernel counters are exported: the
// reconciled one, and every one with a listener that has a series of its
// own. So they are bounded by --max-listeners (+1), and every namespace
// whose listeners the dashboard shows can be compared with its kernel.
func (e *Exporter) exportedNetns() []uint32 {
	set := map[uint32]bool{e.opts.ReconciledNetns: true}
	for ino := range e.slottedNetns {
		set[ino] = true
	}
	out := make([]uint32, 0, len(set))
	for ino := range set {
		if st := e.kernel[ino]; st != nil && st.now != nil {
			out = append(out, ino)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func (e *Exporter) collectKernel(ch chan<- prometheus.Metric) {
	pods := e.netnsPods()
	for _, ino := range e.exportedNetns() {
		ns, st := strconv.FormatUint(uint64(ino), 10), e.kernel[ino]
		p := pods[ino]
		ch <- prometheus.MustNewConstMetric(descNetnsInfo, prometheus.GaugeValue, 1, ns, st.name, p[0], p[1])
		e.collectNetns(ch, ns, st)
	}
}

func (e *Exporter) collectNetns(ch chan<- prometheus.Metric, ns string, st *nsKernel) {
	for _, name := range kernelSet {
		if v, ok := st.now[name]; ok {
			c := netstat.Describe(name)
			d, t := descKernel, prometheus.CounterValue
			if c.Gauge {
				d, t = descKernelGauge, prometheus.GaugeValue
			}
			ch <- prometheus.MustNewConstMetric(d, t, float64(v), ns, c.NodeExporter[len("node_netstat_"):])
		}
	}
	delta := netstat.Delta(st.base, st.now)
	a := &st.synq
	drops := a[vDropSynQueue] + a[vDropAcceptQueue] + a[vDropAckOverflow] + a[vDropOther] + a[vDropSynSide]
	counted := tracer.Counts{DropSynQueue: a[vDropSynQueue], DropAcceptQueue: a[vDropAcceptQueue],
		AckOverflow: a[vDropAckOverflow], Cookie: a[vCookie]}
	for _, c := range ledger.Coverage(e.caps, counted, drops) {
		if !c.Whole || c.Synq == nil {
			continue // only what the hooks are placed to see in full
		}
		k, ok := delta[c.Key]
		if !ok {
			continue
		}
		got := float64(*c.Synq)
		ratio := 1.0
		switch {
		case k > 0:
			ratio = got / float64(k)
		case got > 0:
			ratio = math.Inf(1)
		}
		ch <- prometheus.MustNewConstMetric(descCoverage, prometheus.GaugeValue, ratio, ns, c.Name)
	}
}
