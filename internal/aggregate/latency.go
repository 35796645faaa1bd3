package aggregate

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/synq-trace/synq/internal/hist"
	"github.com/synq-trace/synq/tracer"
)

// GroupBy says what one latency distribution covers.
type GroupBy string

const (
	// ByListener: one distribution per listening socket; the members of
	// an SO_REUSEPORT group are separate sockets with separate queues.
	ByListener GroupBy = "listener"
	// ByPort: one per port and network namespace, over every address and
	// SO_REUSEPORT member listening on it.
	ByPort GroupBy = "port"
)

// ParseGroupBy validates a --by value.
func ParseGroupBy(s string) (GroupBy, error) {
	switch GroupBy(s) {
	case ByListener, ByPort:
		return GroupBy(s), nil
	}
	return "", fmt.Errorf("unknown grouping %q (want listener or port)", s)
}

type groupKey struct {
	id    tracer.ListenerID // ByListener
	netns uint32
	port  uint16
}

// Group is the accept latency and accept-queue depth distributions of one
// listener, or of one port.
type Group struct {
	Netns     uint32
	NetnsName string
	Port      uint16
	// Addrs: the listener's address, or every address seen on the port.
	Addrs []netip.Addr
	// Listeners are the sockets seen (one for ByListener), Inodes their
	// inodes where a snapshot showed them.
	Listeners []tracer.ListenerID
	Inodes    []uint64
	// Member is the listener's number in its SO_REUSEPORT group (ByListener;
	// 0 when alone on its address and port, see Members).
	Member int
	// Owners hold the sockets; the ones seen accepting come first, marked.
	Owners []Owner

	// Latency of every accept with a known enqueue time, in ns; Log2 of
	// the same in µs for bcc-style display.
	Latency    *hist.Hist
	LatencyLog *hist.Log2
	// UnknownLatency counts accepts of connections enqueued before synq
	// started (or whose enqueue the hooks could not see).
	UnknownLatency uint64

	// Depth of the accept queue right after each enqueue (the new child
	// included), and the largest backlog seen.
	Depth   *hist.Hist
	Backlog uint32
}

// Latency collects per-group accept latency and enqueue depth
// distributions from accept and enqueue events. Safe for concurrent use.
type Latency struct {
	by     GroupBy
	mu     sync.Mutex
	groups map[groupKey]*Group
	// where each listener seen in an event is (for UseKernel)
	seen map[tracer.ListenerID]tracer.Endpoint
	acc  acceptors
	// from the snapshot given to UseKernel
	inodes  map[tracer.ListenerID]uint64
	members map[uint64]int
	keep    func(tracer.ListenerID) bool // from Keep; nil keeps all
}

// Keep drops every listener keep refuses (a workload filter): groups left
// without a listener go, the others count only the kept listeners'
// addresses, and UseKernel ignores the refused ones. Call it before
// UseKernel (whose kernel histograms replace what events counted).
func (a *Latency) Keep(keep func(tracer.ListenerID) bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.keep = keep
	for id := range a.seen {
		if !keep(id) {
			delete(a.seen, id)
		}
	}
	for k, g := range a.groups {
		g.Listeners = slices.DeleteFunc(g.Listeners, func(id tracer.ListenerID) bool { return !keep(id) })
		if len(g.Listeners) == 0 {
			delete(a.groups, k)
			continue
		}
		g.Addrs = g.Addrs[:0]
		for _, id := range g.Listeners {
			if ep, ok := a.seen[id]; ok && !slices.Contains(g.Addrs, ep.Addr) {
				g.Addrs = append(g.Addrs, ep.Addr)
			}
		}
	}
}

// NewLatency groups by by.
func NewLatency(by GroupBy) *Latency {
	return &Latency{by: by, groups: map[groupKey]*Group{}, seen: map[tracer.ListenerID]tracer.Endpoint{}, acc: acceptors{},
		inodes: map[tracer.ListenerID]uint64{}}
}

// UseKernel replaces the distributions taken from events with the kernel's
// histograms over the run (deltas, see tracer.Histogram.Sub), which are
// exact whatever the event stream lost or sampled, and their maxima with
// the kernel's exact ones over the same run (tracer.Maxima; nil: bucket
// bounds). A listener is placed by the events it was seen in, else by
// listeners (a snapshot); one that is in neither (closed before any of its
// events was streamed) cannot be named and is left out.
func (a *Latency) UseKernel(deltas map[tracer.ListenerID]*tracer.Histogram, maxima map[tracer.ListenerID]tracer.Max, listeners []tracer.Listener) {
	a.mu.Lock()
	defer a.mu.Unlock()
	backlog := map[tracer.ListenerID]uint32{}
	a.members = Members(listeners)
	for _, l := range listeners {
		if a.keep != nil && !a.keep(l.ID) {
			continue
		}
		a.inodes[l.ID] = l.Inode
		if _, ok := a.seen[l.ID]; !ok {
			a.seen[l.ID] = l.Endpoint
		}
		backlog[l.ID] = l.AcceptQueueMax
	}
	for _, g := range a.groups {
		g.Latency, g.LatencyLog, g.Depth, g.UnknownLatency = hist.New(), &hist.Log2{}, hist.New(), 0
	}
	for id, d := range deltas {
		ep, ok := a.seen[id]
		if !ok || id == 0 || a.keep != nil && !a.keep(id) {
			continue
		}
		accepts, enqueues := d.Accepts(), uint64(0)
		for _, c := range d.Depth {
			enqueues += c
		}
		if accepts == 0 && enqueues == 0 {
			continue
		}
		g := a.group(id, ep)
		m := maxima[id]
		lh := WithMax(toPrecision(d.Latency[:]), d.Latency[:], uint64(m.Latency))
		g.Latency.Merge(lh)
		top := -1
		for i, c := range d.Latency {
			if c > 0 {
				top = i
			}
		}
		for i, c := range d.Latency {
			if c == 0 {
				continue
			}
			if i == top && lh.Max() == uint64(m.Latency) {
				// One of them is the exact max: chart it where it is.
				g.LatencyLog.Record(lh.Max() / uint64(time.Microsecond))
				c--
			}
			g.LatencyLog.RecordN(kernelBucketMid(i)/uint64(time.Microsecond), c)
		}
		g.UnknownLatency += d.NoLatency
		g.Depth.Merge(WithMax(toPrecision(d.Depth[:]), d.Depth[:], uint64(m.Depth)))
		if b, ok := backlog[id]; ok {
			g.Backlog = max(g.Backlog, b)
		}
	}
}

// toPrecision re-expresses kernel buckets at the default precision (each
// kernel bucket's count at its midpoint), so that they merge with the
// collector's histograms; the kernel's coarser error bound still applies.
func toPrecision(buckets []uint64) *hist.Hist {
	out := hist.New()
	for i, c := range buckets {
		if c > 0 {
			out.RecordN(kernelBucketMid(i), c)
		}
	}
	return out
}

// WithMax gives h, built from the kernel buckets, the kernel's exact
// maximum v when v lies in the highest non-empty bucket. Otherwise (no
// maximum, or the listener's maxima entry was evicted and restarted apart
// from its histogram) h keeps the bound its buckets give.
func WithMax(h *hist.Hist, buckets []uint64, v uint64) *hist.Hist {
	for i := len(buckets) - 1; i >= 0; i-- {
		if buckets[i] == 0 {
			continue
		}
		lo, next := hist.BucketLow(tracer.HistPrecision, i), hist.BucketLow(tracer.HistPrecision, i+1)
		if v >= lo && (v < next || i == len(buckets)-1) {
			h.SetMax(v)
		}
		break
	}
	return h
}

// kernelBucketMid is the midpoint of bucket i of the kernel's histograms.
func kernelBucketMid(i int) uint64 {
	lo := hist.BucketLow(tracer.HistPrecision, i)
	return lo + (hist.BucketLow(tracer.HistPrecision, i+1)-lo)/2
}

// group returns (creating) the group of listener id at ep. Callers hold mu.
func (a *Latency) group(id tracer.ListenerID, ep tracer.Endpoint) *Group {
	k := groupKey{netns: ep.Netns, port: ep.Port}
	if a.by == ByListener {
		k.id = id
	}
	g := a.groups[k]
	if g == nil {
		g = &Group{Netns: ep.Netns, Port: ep.Port, Latency: hist.New(), LatencyLog: &hist.Log2{}, Depth: hist.New()}
		a.groups[k] = g
	}
	if !slices.Contains(g.Addrs, ep.Addr) {
		g.Addrs = append(g.Addrs, ep.Addr)
	}
	if id != 0 && !slices.Contains(g.Listeners, id) {
		g.Listeners = append(g.Listeners, id)
	}
	return g
}

// Observe accounts an accept or enqueue event; other kinds are ignored.
func (a *Latency) Observe(ev *tracer.Event) {
	if ev.Kind != tracer.KindAccept && ev.Kind != tracer.KindEnqueue {
		return
	}
	if ev.Kind == tracer.KindEnqueue && (!ev.QueueKnown || ev.Listener == 0) {
		return // nothing to learn about the listener's queue
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.acc.observe(ev)
	if ev.Listener != 0 {
		a.seen[ev.Listener] = ev.Endpoint
	}
	g := a.group(ev.Listener, ev.Endpoint)
	switch ev.Kind {
	case tracer.KindAccept:
		if !ev.LatencyKnown || ev.Latency < 0 {
			g.UnknownLatency++
			return
		}
		g.Latency.Record(uint64(ev.Latency))
		g.LatencyLog.Record(uint64(ev.Latency / time.Microsecond))
	case tracer.KindEnqueue:
		g.Depth.Record(uint64(ev.AcceptQueueLen))
		g.Backlog = max(g.Backlog, ev.AcceptQueueMax)
	}
}

// Groups returns the groups sorted by netns, port and address. owners
// (by listener) and netnsNames may be nil. The groups are the collector's
// own: stop observing before reading them.
func (a *Latency) Groups(owners map[tracer.ListenerID][]Owner, netnsNames map[uint32]string) []*Group {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]*Group, 0, len(a.groups))
	for _, g := range a.groups {
		g.NetnsName = netnsNames[g.Netns]
		g.Owners, g.Inodes, g.Member = nil, nil, 0
		for _, id := range g.Listeners {
			for _, o := range MarkAccepting(owners[id], a.acc[id]) {
				if i := slices.IndexFunc(g.Owners, func(x Owner) bool { return x.PID == o.PID }); i < 0 {
					g.Owners = append(g.Owners, o)
				} else if o.Accepting {
					g.Owners[i].Accepting = true
				}
			}
			if ino, ok := a.inodes[id]; ok {
				g.Inodes = append(g.Inodes, ino)
				if a.by == ByListener {
					g.Member = a.members[ino]
				}
			}
		}
		// Acceptors first, then by pid.
		slices.SortFunc(g.Owners, func(a, b Owner) int {
			if a.Accepting != b.Accepting {
				if a.Accepting {
					return -1
				}
				return 1
			}
			return cmp.Compare(a.PID, b.PID)
		})
		slices.SortFunc(g.Addrs, func(a, b netip.Addr) int { return a.Compare(b) })
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b *Group) int {
		if c := cmp.Compare(a.Netns, b.Netns); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Port, b.Port); c != 0 {
			return c
		}
		if c := slices.CompareFunc(a.Addrs, b.Addrs, func(x, y netip.Addr) int { return x.Compare(y) }); c != 0 {
			return c
		}
		return slices.Compare(a.Listeners, b.Listeners)
	})
	return out
}
