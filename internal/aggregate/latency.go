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
	// Listeners are the sockets seen (one for ByListener).
	Listeners []tracer.ListenerID
	Owners    []Owner

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
}

// NewLatency groups by by.
func NewLatency(by GroupBy) *Latency {
	return &Latency{by: by, groups: map[groupKey]*Group{}}
}

// Observe accounts an accept or enqueue event; other kinds are ignored.
func (a *Latency) Observe(ev *tracer.Event) {
	if ev.Kind != tracer.KindAccept && ev.Kind != tracer.KindEnqueue {
		return
	}
	if ev.Kind == tracer.KindEnqueue && (!ev.QueueKnown || ev.Listener == 0) {
		return // nothing to learn about the listener's queue
	}
	k := groupKey{netns: ev.Netns, port: ev.Port}
	if a.by == ByListener {
		k.id = ev.Listener
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	g := a.groups[k]
	if g == nil {
		g = &Group{Netns: ev.Netns, Port: ev.Port, Latency: hist.New(), LatencyLog: &hist.Log2{}, Depth: hist.New()}
		a.groups[k] = g
	}
	if !slices.Contains(g.Addrs, ev.Addr) {
		g.Addrs = append(g.Addrs, ev.Addr)
	}
	if ev.Listener != 0 && !slices.Contains(g.Listeners, ev.Listener) {
		g.Listeners = append(g.Listeners, ev.Listener)
	}
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
		g.Owners = nil
		for _, id := range g.Listeners {
			for _, o := range owners[id] {
				if !slices.ContainsFunc(g.Owners, func(x Owner) bool { return x.PID == o.PID }) {
					g.Owners = append(g.Owners, o)
				}
			}
		}
		slices.SortFunc(g.Owners, func(a, b Owner) int { return cmp.Compare(a.PID, b.PID) })
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
