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
	"os"
	"slices"
	"sync"
	"time"

	"github.com/synq-trace/synq/internal/netns"
	"github.com/synq-trace/synq/internal/netstat"
	"github.com/synq-trace/synq/tracer"
)

// Namespace is a network namespace to reconcile.
type Namespace struct {
	Inode uint64
	Name  string // under /run/netns, "" if none
	// Do runs fn on an OS thread inside the namespace: netns.NS.Do or
	// netlab.Netns.Do.
	Do func(fn func() error) error
}

// FromNS adapts a namespace found by internal/netns.
func FromNS(ns netns.NS) Namespace {
	return Namespace{Inode: ns.Inode, Name: ns.Name, Do: ns.Do}
}

// AllNamespaces lists every namespace netns.All finds: those with a name
// under /run/netns or a process in them.
func AllNamespaces() ([]Namespace, error) {
	all, err := netns.All()
	if err != nil {
		return nil, err
	}
	out := make([]Namespace, len(all))
	for i, ns := range all {
		out[i] = FromNS(ns)
	}
	return out, nil
}

// Source is what reconcile reads from the tracer; *tracer.Tracer is one.
type Source interface {
	Info() tracer.Info
	Counts() (map[tracer.ListenerID]tracer.Counts, error)
	Stats() (tracer.Stats, error)
}

// Lister lists the listening sockets of the calling thread's network
// namespace; *tracer.Snapshotter is one.
type Lister interface {
	Listeners() ([]tracer.Listener, error)
}

// Config says which namespaces are reconciled. It must match the tracer's
// own filters.
type Config struct {
	// Traced is the only namespace the tracer traces (tracer.Config.Netns):
	// every listener it counts belongs to it. Nil: the tracer traces every
	// namespace and Discover lists them.
	Traced *Namespace
	// Discover lists the namespaces to reconcile when Traced is nil
	// (AllNamespaces). It is called at the start and at every Sample, so
	// namespaces created later are picked up.
	Discover func() ([]Namespace, error)
	// Host is the inode of the host namespace, reported even when idle.
	Host uint64
	// Port is the tracer's port filter (tracer.Config.Port), 0 = all.
	Port uint16
	// ReadCounters reads the counters of the calling thread's namespace;
	// nil reads /proc/thread-self/net.
	ReadCounters func() (netstat.Snapshot, error)
}

// Reconciler keeps the baselines and the listener bookkeeping. Its methods
// are safe for concurrent use.
type Reconciler struct {
	src    Source
	lister Lister
	cfg    Config
	info   tracer.Info
	start  time.Time

	sampling sync.Mutex // one Sample or Report at a time: they enter namespaces

	mu    sync.Mutex
	ns    map[uint64]*nsState
	incs  map[incKey]*incarnation
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
	seen   bool // found by the last Discover (or Traced): worth entering
}

// errGone: Discover no longer finds the namespace (no process and no
// /run/netns name refers to it).
var errGone = errors.New("gone: no process and no /run/netns name refers to it any more")

// incKey is one listening socket: the kernel reuses a listener's address
// (its ListenerID) after it is freed, the socket inode tells them apart.
type incKey struct {
	id    tracer.ListenerID
	inode uint64
}

// incarnation is one listening socket as last seen.
type incarnation struct {
	netns uint64
	l     tracer.Listener
	// sk_drops at the baseline, or 0 for a socket created after it.
	first  uint32
	closed bool
}

type owner struct {
	netns uint64
	ep    tracer.Endpoint
}

// New takes the baselines: the counters and listeners of the traced
// namespace(s) and the tracer's per-listener counts, now. What happened
// before is left out on both sides.
func New(src Source, lister Lister, cfg Config) (*Reconciler, error) {
	if cfg.Traced == nil && cfg.Discover == nil {
		return nil, errors.New("reconcile: neither a traced namespace nor a way to discover them")
	}
	if cfg.ReadCounters == nil {
		cfg.ReadCounters = readCounters
	}
	r := &Reconciler{
		src: src, lister: lister, cfg: cfg, info: src.Info(), start: time.Now(),
		ns:         map[uint64]*nsState{},
		incs:       map[incKey]*incarnation{},
		owner:      map[tracer.ListenerID]owner{},
		listed:     map[tracer.ListenerID]bool{},
		unreadable: map[uint64]bool{},
	}
	r.sampling.Lock()
	defer r.sampling.Unlock()
	if err := r.discover(); err != nil {
		return nil, err
	}
	if cfg.Traced != nil {
		if st := r.ns[cfg.Traced.Inode]; st.err != nil {
			return nil, fmt.Errorf("reconcile: %w", st.err)
		}
	}
	counts, err := src.Counts()
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.startCounts = counts
	r.mu.Unlock()
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
	if err := r.discover(); err != nil {
		return err
	}
	for _, st := range r.namespaces() {
		if st.base == nil || r.skipGone(st) {
			continue
		}
		var ls []tracer.Listener
		err := st.ns.Do(func() (err error) {
			ls, err = r.lister.Listeners()
			return err
		})
		r.mu.Lock()
		if err != nil {
			st.err, st.missed = err, true
		} else {
			st.err = nil
			r.updateListeners(st, ls, false)
		}
		r.mu.Unlock()
	}
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

// skipGone marks a namespace Discover no longer lists as gone: entering it
// by an old path could only fail.
func (r *Reconciler) skipGone(st *nsState) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if st.seen {
		return false
	}
	st.err, st.missed = errGone, true
	return true
}

// namespaces returns the known namespace states (stable pointers).
func (r *Reconciler) namespaces() []*nsState {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*nsState, 0, len(r.ns))
	for _, st := range r.ns {
		out = append(out, st)
	}
	return out
}

// discover adds namespaces not known yet and takes their baselines, and
// retries baselines that failed. Call with r.sampling held.
func (r *Reconciler) discover() error {
	var found []Namespace
	if r.cfg.Traced != nil {
		found = []Namespace{*r.cfg.Traced}
	} else {
		var err error
		if found, err = r.cfg.Discover(); err != nil {
			return fmt.Errorf("reconcile: list network namespaces: %w", err)
		}
	}
	r.mu.Lock()
	var todo []*nsState
	for _, st := range r.ns {
		st.seen = false
	}
	for _, ns := range found {
		st, ok := r.ns[ns.Inode]
		if !ok {
			st = &nsState{}
			r.ns[ns.Inode] = st
			delete(r.unreadable, ns.Inode)
		}
		// The path may have changed: the process it came from exited.
		st.ns, st.seen = ns, true
		if st.base == nil {
			todo = append(todo, st)
		}
	}
	r.mu.Unlock()
	if len(todo) == 0 {
		return nil
	}
	type result struct {
		ls  []tracer.Listener
		c   netstat.Snapshot
		err error
		at  time.Time
	}
	res := make([]result, len(todo))
	for i, st := range todo {
		res[i].err = st.ns.Do(func() (err error) {
			if res[i].ls, err = r.lister.Listeners(); err != nil {
				return err
			}
			res[i].c, err = r.cfg.ReadCounters()
			return err
		})
		res[i].at = time.Now()
	}
	// Read after the namespaces' counters, like Report does, so that
	// events in flight fall on the same side of both baselines.
	counts, err := r.src.Counts()
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, st := range todo {
		if res[i].err != nil {
			st.err = res[i].err
			continue
		}
		st.err = nil
		st.base, st.baseCounts, st.baseTime = res[i].c, counts, res[i].at
		r.updateListeners(st, res[i].ls, true)
	}
	return nil
}

// updateListeners records a successful listing of st's namespace. At the
// baseline, sk_drops so far are left out; a socket first seen later was
// created after the baseline and counts from 0. Call with r.mu held.
func (r *Reconciler) updateListeners(st *nsState, ls []tracer.Listener, baseline bool) {
	inode := st.ns.Inode
	now := map[incKey]bool{}
	for _, l := range ls {
		if r.cfg.Port != 0 && l.Port != r.cfg.Port {
			continue
		}
		k := incKey{l.ID, l.Inode}
		now[k] = true
		inc, ok := r.incs[k]
		if !ok {
			inc = &incarnation{netns: inode}
			if baseline {
				inc.first = l.SkDrops
			}
			r.incs[k] = inc
		}
		inc.l, inc.closed, inc.netns = l, false, inode
		r.owner[l.ID] = owner{netns: inode, ep: l.Endpoint}
		r.listed[l.ID] = true
	}
	for k, inc := range r.incs {
		if inc.netns != inode || now[k] {
			continue
		}
		inc.closed = true
		if inc.l.SkDrops == inc.first {
			// Adds nothing to any sum: keep memory bounded on hosts
			// where listeners come and go.
			delete(r.incs, k)
		}
	}
}

// Report samples every namespace and reconciles its counters with what synq
// counted since the baseline. final marks the report printed on exit.
func (r *Reconciler) Report(final bool) (*Report, error) {
	r.sampling.Lock()
	defer r.sampling.Unlock()
	if err := r.discover(); err != nil {
		return nil, err
	}
	now := map[uint64]netstat.Snapshot{}
	for _, st := range r.namespaces() {
		if st.base == nil || r.skipGone(st) {
			continue
		}
		var ls []tracer.Listener
		var c netstat.Snapshot
		err := st.ns.Do(func() (err error) {
			if ls, err = r.lister.Listeners(); err != nil {
				return err
			}
			c, err = r.cfg.ReadCounters()
			return err
		})
		r.mu.Lock()
		if err != nil {
			st.err, st.missed = err, true
		} else {
			st.err = nil
			now[st.ns.Inode] = c
			r.updateListeners(st, ls, false)
		}
		r.mu.Unlock()
	}
	counts, err := r.src.Counts()
	if err != nil {
		return nil, err
	}
	stats, err := r.src.Stats()
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.build(final, now, counts, stats), nil
}

// The reads of a report are ordered to keep the windows in which traffic
// lands on one side only short: the listing (sk_drops), then the namespace's
// counters (both move in tcp_listendrop), then the tracer's counts.

// readCounters reads netstat and snmp of the calling thread's namespace
// (not snmp6: nothing reconciled is there, and it is the slowest to print).
func readCounters() (netstat.Snapshot, error) {
	s := make(netstat.Snapshot, 256)
	for _, f := range []string{"netstat", "snmp"} {
		b, err := os.ReadFile("/proc/thread-self/net/" + f)
		if err != nil {
			return nil, fmt.Errorf("read counters: %w", err)
		}
		if err := netstat.ParseTable(b, s); err != nil {
			return nil, fmt.Errorf("parse /proc/thread-self/net/%s: %w", f, err)
		}
	}
	return s, nil
}

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

	// Group listener sockets by ID: a reused address has several.
	byID := map[tracer.ListenerID][]*incarnation{}
	for k, inc := range r.incs {
		byID[k.id] = append(byID[k.id], inc)
	}
	ids := map[tracer.ListenerID]bool{}
	for id := range counts {
		ids[id] = true
	}
	for id := range byID {
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
			unattributed = addCounts(unattributed, sub(counts[id], r.startCounts[id]))
			continue
		}
		var base tracer.Counts
		if st, ok := r.ns[o.netns]; ok && st.base != nil {
			base = st.baseCounts[id]
		} else {
			base = r.startCounts[id]
		}
		c := sub(counts[id], base)
		var skDelta uint64
		var last *incarnation
		for _, inc := range byID[id] {
			skDelta += uint64(inc.l.SkDrops - inc.first)
			if last == nil || !inc.closed {
				last = inc
			}
		}
		drops, exact := tracer.ListenDrops(r.info, tracer.Listener{}, tracer.Listener{SkDrops: uint32(skDelta)}, c)
		a := get(o.netns)
		if r.info.Tier == tracer.TierTracepoint && !r.listed[id] && id != 0 {
			a.unlisted++
			exact = false
		}
		if id == 0 {
			drops, exact = 0, true // no listener: nothing of it is in sk_drops
		}
		a.counts = addCounts(a.counts, c)
		a.drops += drops
		a.exact = a.exact && exact
		if c == (tracer.Counts{}) && drops == 0 {
			continue
		}
		a.active = true
		lr := ListenerReport{ID: id, Endpoint: o.ep, Counts: c, ListenDrops: drops, ListenDropsExact: exact}
		if last != nil {
			lr.Endpoint = last.l.Endpoint
			lr.AcceptQueueLen, lr.AcceptQueueMax, lr.SynQueueLen = last.l.AcceptQueueLen, last.l.AcceptQueueMax, last.l.SynQueueLen
			lr.QueueKnown, lr.Closed = true, last.closed
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
		var missed bool
		if st, ok := r.ns[ino]; ok {
			nr.Name = st.ns.Name
			missed = st.missed
			switch {
			case st.base == nil && st.err != nil:
				nr.Err = fmt.Sprintf("not readable: %v", st.err)
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
		sortListeners(nr.Listeners)
		traced := r.cfg.Traced != nil && ino == r.cfg.Traced.Inode
		if !traced && !nr.Host && !a.active && !kernelActive(delta) {
			rep.Idle++
			continue
		}
		rep.Netns = append(rep.Netns, nr)
	}
	return rep
}

func kernelActive(delta netstat.Snapshot) bool {
	for _, c := range counters {
		if c.activity && delta[c.key] != 0 {
			return true
		}
	}
	return false
}

// sub is a - b per field. A field below its baseline means the LRU map
// evicted the listener and counted it afresh: take a as is.
func sub(a, b tracer.Counts) tracer.Counts {
	d := func(x, y uint64) uint64 {
		if x < y {
			return x
		}
		return x - y
	}
	return tracer.Counts{
		Syn: d(a.Syn, b.Syn), Cookie: d(a.Cookie, b.Cookie), SynackRetrans: d(a.SynackRetrans, b.SynackRetrans),
		Enqueue: d(a.Enqueue, b.Enqueue), AckOverflow: d(a.AckOverflow, b.AckOverflow), Accept: d(a.Accept, b.Accept),
		DropSynQueue: d(a.DropSynQueue, b.DropSynQueue), DropAcceptQueue: d(a.DropAcceptQueue, b.DropAcceptQueue),
		DropOther: d(a.DropOther, b.DropOther), RcvDrops: d(a.RcvDrops, b.RcvDrops), AckOther: d(a.AckOther, b.AckOther),
	}
}

func addCounts(a, b tracer.Counts) tracer.Counts {
	return tracer.Counts{
		Syn: a.Syn + b.Syn, Cookie: a.Cookie + b.Cookie, SynackRetrans: a.SynackRetrans + b.SynackRetrans,
		Enqueue: a.Enqueue + b.Enqueue, AckOverflow: a.AckOverflow + b.AckOverflow, Accept: a.Accept + b.Accept,
		DropSynQueue: a.DropSynQueue + b.DropSynQueue, DropAcceptQueue: a.DropAcceptQueue + b.DropAcceptQueue,
		DropOther: a.DropOther + b.DropOther, RcvDrops: a.RcvDrops + b.RcvDrops, AckOther: a.AckOther + b.AckOther,
	}
}

func sortedKeys(m map[uint64]bool) []uint64 {
	return slices.Sorted(maps.Keys(m))
}
