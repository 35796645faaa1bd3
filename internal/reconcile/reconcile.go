// Package reconcile proves synq's numbers against the kernel's: while a
// tracer runs it samples the SNMP counters (ListenDrops, ListenOverflows,
// TCPReqQFullDrop, SyncookiesSent, PassiveOpens, TCPSynRetrans) and the
// listening sockets of every traced network namespace, and reports, per
// counter, the kernel's delta next to what synq counted for the same
// listeners over the same time, and why they differ where they may.
//
// synq's side comes from the tracer's per-listener counters (Counts), which
// the kernel keeps exactly whatever happens to the event stream; events only
// tell which netns a listener belongs to.
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/synq-trace/synq/internal/ledger"
	"github.com/synq-trace/synq/internal/netns"
	"github.com/synq-trace/synq/internal/netstat"
	"github.com/synq-trace/synq/tracer"
)

// Namespace is a network namespace to reconcile.
type Namespace = ledger.Namespace

// Source is what reconcile reads from the tracer; *tracer.Tracer is one.
type Source interface {
	Info() tracer.Info
	Counts() (map[tracer.ListenerID]tracer.Counts, error)
	Stats() (tracer.Stats, error)
}

// Lister lists the listening sockets of the calling thread's network
// namespace; *tracer.Snapshotter is one.
type Lister = ledger.Lister

// Config says which namespaces are reconciled. It must match the tracer's
// own filters.
type Config struct {
	// Traced is the only namespace the tracer traces (tracer.Config.Netns):
	// every listener it counts belongs to it. Nil: the tracer traces every
	// namespace and Discover lists them.
	Traced *Namespace
	// Discover lists the namespaces to reconcile when Traced is nil
	// (ledger.AllNamespaces). It is called at the start and at every Sample, so
	// namespaces created later are picked up.
	Discover func() ([]Namespace, error)
	// Host is the inode of the host namespace, reported even when idle.
	Host uint64
	// Port is the tracer's port filter (tracer.Config.Port), 0 = all.
	Port uint16
	// ReadCounters reads the counters of the calling thread's namespace;
	// nil reads /proc/thread-self/net.
	ReadCounters func() (netstat.Snapshot, error)
	// Walker, when set, is the walk the caller shares (it must read each
	// namespace's MIB); otherwise the reconciler makes its own.
	Walker *ledger.Walker
}

// Reconciler keeps the baselines and the listener bookkeeping. Its methods
// are safe for concurrent use.
type Reconciler struct {
	src    Source
	walker *ledger.Walker
	cfg    Config
	info   tracer.Info
	start  time.Time

	sampling sync.Mutex // one Sample or Report at a time: they enter namespaces

	mu sync.Mutex
	ns map[uint64]*nsState
	// tally: the listening sockets (incarnations) of every listing and
	// their sk_drops since their namespace's baseline, closed ones included.
	tally *ledger.Tally
	owner map[tracer.ListenerID]owner
	// listed: listeners seen in a listing at least once (their sk_drops
	// are known, even once their closed incarnation is pruned).
	listed map[tracer.ListenerID]bool
	// Counts when the reconciler started: the baseline of namespaces seen
	// only in events (no way to enter them).
	startCounts map[tracer.ListenerID]tracer.Counts
	// unreadable: namespaces seen in events that Discover does not find.
	unreadable map[uint64]bool
	lastObs    tracer.ListenerID
}

type nsState struct {
	ns Namespace
	// Counters and per-listener Counts when this namespace's baseline was
	// taken; deltas are against these.
	base       netstat.Snapshot
	baseCounts map[tracer.ListenerID]tracer.Counts
	baseTime   time.Time
	// err: why the namespace could not be read last time (baseline or
	// sample); missed: a sample failed after the baseline, so listeners
	// that lived only then were never seen.
	err    error
	missed bool
}

// errGone: Discover no longer finds the namespace (no process and no
// /run/netns name refers to it).
var errGone = errors.New("gone: no process and no /run/netns name refers to it any more")

type owner struct {
	netns uint64
	ep    tracer.Endpoint
}

// New takes the baselines: the counters and listeners of the traced
// namespace(s) and the tracer's per-listener counts, now. What happened
// before is left out on both sides.
func New(src Source, lister Lister, cfg Config) (*Reconciler, error) {
	if cfg.Traced == nil && cfg.Discover == nil && cfg.Walker == nil {
		return nil, errors.New("reconcile: neither a traced namespace nor a way to discover them")
	}
	r := &Reconciler{
		src: src, cfg: cfg, info: src.Info(), start: time.Now(),
		ns:         map[uint64]*nsState{},
		tally:      ledger.NewTally(),
		owner:      map[tracer.ListenerID]owner{},
		listed:     map[tracer.ListenerID]bool{},
		unreadable: map[uint64]bool{},
	}
	r.tally.PerNetns = true
	r.walker = cfg.Walker
	if r.walker == nil {
		r.walker = &ledger.Walker{Lister: lister, Only: cfg.Traced, Discover: cfg.Discover, MIB: true, ReadMIB: cfg.ReadCounters}
	}
	r.sampling.Lock()
	defer r.sampling.Unlock()
	v, err := r.walker.Walk()
	if err != nil && v == nil {
		return nil, fmt.Errorf("reconcile: %w", err)
	}
	if cfg.Traced != nil && v.Netns[0].Err != nil {
		return nil, fmt.Errorf("reconcile: %w", v.Netns[0].Err)
	}
	counts, err := src.Counts()
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.startCounts = counts
	r.apply(v, counts)
	return r, nil
}

// Observe learns from an event which namespace a listener is in. Call it
// for every event read (it is cheap): a listener that opens and closes
// between two samples is otherwise not placed in any namespace.
func (r *Reconciler) Observe(ev *tracer.Event) {
	if ev.Listener == 0 {
		return
	}
	r.mu.Lock()
	if ev.Listener != r.lastObs || r.owner[ev.Listener].netns != uint64(ev.Netns) {
		r.owner[ev.Listener] = owner{netns: uint64(ev.Netns), ep: ev.Endpoint}
		r.lastObs = ev.Listener
		if _, ok := r.ns[uint64(ev.Netns)]; !ok {
			r.unreadable[uint64(ev.Netns)] = true
		}
	}
	r.mu.Unlock()
}

// Sample reads the listeners of every namespace (and, without a traced
// namespace, looks for new namespaces), so that listeners which close before
// the next report are still placed and their last sk_drops known. Track
// calls it periodically.
func (r *Reconciler) Sample() error {
	r.sampling.Lock()
	defer r.sampling.Unlock()
	v, err := r.walker.Walk()
	if v == nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	var counts map[tracer.ListenerID]tracer.Counts
	if r.needsBaseline(v) {
		// Read after the namespaces' counters, like Report does, so that
		// events in flight fall on the same side of both baselines.
		if counts, err = r.src.Counts(); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.apply(v, counts)
	return nil
}

// Track calls Sample every interval until ctx ends. On a host with many
// namespaces a sample enters each; the interval grows to keep that under 2%
// of a CPU.
func (r *Reconciler) Track(ctx context.Context, every time.Duration) {
	t := time.NewTimer(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		_ = r.Sample()
		t.Reset(max(every, 50*time.Since(start)))
	}
}

// needsBaseline: the view has a namespace without a baseline yet.
func (r *Reconciler) needsBaseline(v *ledger.View) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range v.Netns {
		if st, ok := r.ns[n.NS.Inode]; n.Err == nil && (!ok || st.base == nil) {
			return true
		}
	}
	return false
}

// apply takes a walk: baselines of namespaces seen for the first time (with
// counts, read after the walk), listings of the others. A namespace known
// but not in the walk is gone. Call with r.mu held.
func (r *Reconciler) apply(v *ledger.View, counts map[tracer.ListenerID]tracer.Counts) map[uint64]netstat.Snapshot {
	now := map[uint64]netstat.Snapshot{}
	inView := map[uint64]bool{}
	// The listings the tally takes: of this reconciler's port only.
	listed := &ledger.View{}
	for _, n := range v.Netns {
		inView[n.NS.Inode] = true
		st, ok := r.ns[n.NS.Inode]
		if !ok {
			st = &nsState{}
			r.ns[n.NS.Inode] = st
			delete(r.unreadable, n.NS.Inode)
		}
		// The path may have changed: the process it came from exited.
		st.ns = n.NS
		switch {
		case n.Err != nil:
			st.err = n.Err
			st.missed = st.missed || st.base != nil
			continue
		case st.base == nil:
			if counts == nil {
				continue
			}
			st.err = nil
			st.base, st.baseCounts, st.baseTime = n.MIB, counts, n.At
		default:
			st.err = nil
			now[n.NS.Inode] = n.MIB
		}
		listed.Netns = append(listed.Netns, ledger.NetnsView{NS: n.NS, Listeners: r.ours(n.NS.Inode, n.Listeners)})
	}
	// A namespace's first listing is its sk_drops baseline (PerNetns).
	r.tally.Update(listed, counts, nil)
	for ino, st := range r.ns {
		if !inView[ino] && st.base != nil {
			st.err, st.missed = errGone, true
		}
	}
	return now
}

// ours keeps the listeners of the reconciled port and places them in their
// namespace. Call with r.mu held.
func (r *Reconciler) ours(inode uint64, ls []tracer.Listener) []tracer.Listener {
	var out []tracer.Listener
	for _, l := range ls {
		if r.cfg.Port != 0 && l.Port != r.cfg.Port {
			continue
		}
		out = append(out, l)
		r.owner[l.ID] = owner{netns: inode, ep: l.Endpoint}
		r.listed[l.ID] = true
	}
	return out
}

// Report samples every namespace and reconciles its counters with what synq
// counted since the baseline. final marks the report printed on exit.
func (r *Reconciler) Report(final bool) (*Report, error) {
	r.sampling.Lock()
	defer r.sampling.Unlock()
	v, err := r.walker.Walk()
	if v == nil {
		return nil, fmt.Errorf("reconcile: %w", err)
	}
	counts, err := r.src.Counts()
	if err != nil {
		return nil, err
	}
	stats, err := r.src.Stats()
	if err != nil {
		return nil, err
	}
	return r.ReportView(final, v, counts, stats), nil
}

// ReportView reconciles from a walk the caller made (its Walker reads each
// namespace's MIB) and the tracer's counts and stats read after it: one walk
// and one read of the counter map serve the caller and the report.
func (r *Reconciler) ReportView(final bool, v *ledger.View, counts map[tracer.ListenerID]tracer.Counts, stats tracer.Stats) *Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.apply(v, counts)
	return r.build(final, now, counts, stats)
}

// The reads of a report are ordered to keep the windows in which traffic
// lands on one side only short: the listing (sk_drops), then the namespace's
// counters (both move in tcp_listendrop), then the tracer's counts.

// agg is what synq counted in one namespace.
type agg struct {
	counts tracer.Counts
	drops  uint64
	exact  bool // every listener's ListenDrops is exact
	active bool
	// listeners with counts but never seen in a listing (tracepoint tier:
	// their sk_drops are unknown).
	unlisted  int
	listeners []ListenerReport
}

// build turns the samples into a report. Call with r.mu held.
func (r *Reconciler) build(final bool, now map[uint64]netstat.Snapshot, counts map[tracer.ListenerID]tracer.Counts, stats tracer.Stats) *Report {
	rep := &Report{
		Time: time.Now(), Final: final, Tier: r.info.Tier, Kernel: r.info.Kernel, Port: r.cfg.Port,
		Lost: stats.Lost, RecursionMisses: stats.RecursionMisses, BadRecords: stats.BadRecords,
	}
	rep.Elapsed = rep.Time.Sub(r.start)

	// The listening sockets listed, by address: sk_drops of every
	// incarnation there, closed ones included.
	socks := map[tracer.ListenerID]*ledger.Sock{}
	r.tally.Each(func(s *ledger.Sock) {
		if s.Snapped {
			socks[s.ID] = s
		}
	})
	ids := map[tracer.ListenerID]bool{}
	for id := range counts {
		ids[id] = true
	}
	for id := range socks {
		ids[id] = true
	}
	aggs := map[uint64]*agg{}
	get := func(ns uint64) *agg {
		a, ok := aggs[ns]
		if !ok {
			a = &agg{exact: true}
			aggs[ns] = a
		}
		return a
	}
	var unattributed tracer.Counts
	caps := r.info.Caps()
	for id := range ids {
		o, placed := r.owner[id]
		if r.cfg.Traced != nil {
			o.netns, placed = r.cfg.Traced.Inode, true
		}
		if !placed {
			// Only with every netns traced: a listener that opened and
			// closed between samples and whose events were all lost or
			// filtered out. (Listener 0 are enqueues whose listener the
			// tracepoint tier cannot see before 6.6.)
			unattributed = unattributed.Add(counts[id].Sub(r.startCounts[id]))
			continue
		}
		var base tracer.Counts
		if st, ok := r.ns[o.netns]; ok && st.base != nil {
			base = st.baseCounts[id]
		} else {
			base = r.startCounts[id]
		}
		c := counts[id].Sub(base)
		var skDelta uint64
		var last *ledger.Sock
		if s := socks[id]; s != nil {
			skDelta = s.SkDrops()
			if !s.Closed || skDelta != 0 {
				// Closed with nothing to add: pruned.
				last = s
			}
		}
		drops, exact := tracer.ListenDrops(r.info, tracer.Listener{}, tracer.Listener{SkDrops: uint32(skDelta)}, c)
		a := get(o.netns)
		if !caps.SynSide && !r.listed[id] && id != 0 {
			// ListenDrops from sk_drops, which no listing showed.
			a.unlisted++
			exact = false
		}
		if id == 0 {
			drops, exact = 0, true // no listener: nothing of it is in sk_drops
		}
		a.counts = a.counts.Add(c)
		a.drops += drops
		a.exact = a.exact && exact
		if c == (tracer.Counts{}) && drops == 0 {
			continue
		}
		a.active = true
		lr := ListenerReport{ID: id, Endpoint: o.ep, Counts: c, ListenDrops: drops, ListenDropsExact: exact,
			Drops: ledger.BreakdownOf(caps, drops, exact, c)}
		if last != nil {
			lr.Endpoint, lr.Inode = last.Last.Endpoint, last.Last.Inode
			lr.AcceptQueueLen, lr.AcceptQueueMax, lr.SynQueueLen = last.Last.AcceptQueueLen, last.Last.AcceptQueueMax, last.Last.SynQueueLen
			lr.QueueKnown, lr.Closed = true, last.Closed
		} else if r.listed[id] {
			lr.Closed = true // pruned: closed with nothing left to add
		}
		a.listeners = append(a.listeners, lr)
	}
	if unattributed != (tracer.Counts{}) {
		rep.Unattributed = &unattributed
	}

	inodes := map[uint64]bool{}
	for ino := range r.ns {
		inodes[ino] = true
	}
	for ino := range r.unreadable {
		inodes[ino] = true
	}
	for ino := range aggs {
		inodes[ino] = true
	}
	var names map[uint64]string // read once, only if some netns needs it
	for _, ino := range sortedKeys(inodes) {
		a := aggs[ino]
		if a == nil {
			a = &agg{exact: true}
		}
		nr := NetnsReport{Inode: ino, Host: ino == r.cfg.Host}
		var delta netstat.Snapshot
		var missed, unseen bool
		if st, ok := r.ns[ino]; ok {
			nr.Name = st.ns.Name
			missed = st.missed
			switch {
			case st.base == nil && st.err != nil:
				// Never read: whatever happened there is unknown, not
				// idle.
				nr.Err = fmt.Sprintf("not readable: %s", ledger.Why(st.err))
				unseen = true
			case st.err != nil:
				nr.Err = fmt.Sprintf("not readable any more (gone?): %v", st.err)
			case now[ino] != nil:
				delta = netstat.Delta(st.base, now[ino])
			}
		} else {
			if names == nil {
				names = netns.Names()
			}
			nr.Name = names[ino]
			nr.Err = "not readable: no process and no /run/netns name refers to it"
			missed = true
		}
		nr.Rows = r.rows(delta, a, missed, stats.RecursionMisses)
		nr.Listeners = a.listeners
		settle(nr.Listeners, delta, caps)
		sortListeners(nr.Listeners)
		traced := r.cfg.Traced != nil && ino == r.cfg.Traced.Inode
		if !traced && !nr.Host && !unseen && !a.active && !kernelActive(delta) {
			rep.Idle++
			continue
		}
		rep.Netns = append(rep.Netns, nr)
	}
	return rep
}

func kernelActive(delta netstat.Snapshot) bool {
	for _, c := range ledger.Coverage(tracer.Capabilities{}, tracer.Counts{}, 0) {
		if c.Activity && delta[c.Key] != 0 {
			return true
		}
	}
	return false
}

func sortedKeys(m map[uint64]bool) []uint64 {
	return slices.Sorted(maps.Keys(m))
}
