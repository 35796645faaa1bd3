package aggregate

import (
	"net/netip"
	"testing"
	"time"

	"github.com/synq-trace/synq/internal/hist"
	"github.com/synq-trace/synq/tracer"
)

func TestLatencyGroups(t *testing.T) {
	ep := endpointIn(1)
	// Two SO_REUSEPORT members on :80 (ids 1, 2), [::]:80 (id 3), :81 (id 4).
	evs := []tracer.Event{
		{Kind: tracer.KindAccept, Listener: 1, Endpoint: ep("0.0.0.0", 80), LatencyKnown: true, Latency: 3 * time.Microsecond},
		{Kind: tracer.KindAccept, Listener: 1, Endpoint: ep("0.0.0.0", 80), LatencyKnown: true, Latency: 100 * time.Microsecond},
		{Kind: tracer.KindAccept, Listener: 2, Endpoint: ep("0.0.0.0", 80), LatencyKnown: true, Latency: 5 * time.Millisecond},
		{Kind: tracer.KindAccept, Listener: 3, Endpoint: ep("::", 80), LatencyKnown: true, Latency: 7 * time.Millisecond},
		{Kind: tracer.KindAccept, Listener: 3, Endpoint: ep("::", 80)}, // enqueued before synq started
		{Kind: tracer.KindEnqueue, Listener: 4, Endpoint: ep("127.0.0.1", 81), QueueKnown: true, AcceptQueueLen: 1, AcceptQueueMax: 4},
		{Kind: tracer.KindEnqueue, Listener: 4, Endpoint: ep("127.0.0.1", 81), QueueKnown: true, AcceptQueueLen: 5, AcceptQueueMax: 4},
		{Kind: tracer.KindEnqueue, Endpoint: ep("127.0.0.1", 81)}, // listener unknown: no depth
		{Kind: tracer.KindAckOverflow, Listener: 4, Endpoint: ep("127.0.0.1", 81), QueueKnown: true, AcceptQueueLen: 5},
	}
	owners := map[tracer.ListenerID][]Owner{1: {{PID: 7, Comm: "w"}}, 2: {{PID: 8, Comm: "w"}}, 3: {{PID: 7, Comm: "w"}}}

	byPort := NewLatency(ByPort)
	byListener := NewLatency(ByListener)
	for i := range evs {
		byPort.Observe(&evs[i])
		byListener.Observe(&evs[i])
	}

	gs := byPort.Groups(owners, map[uint32]string{1: "ns1"})
	if len(gs) != 2 {
		t.Fatalf("by port: %d groups, want 2", len(gs))
	}
	p80 := gs[0]
	if p80.Port != 80 || p80.NetnsName != "ns1" || len(p80.Addrs) != 2 || len(p80.Listeners) != 3 || len(p80.Owners) != 2 {
		t.Errorf("port 80 group: %+v", p80)
	}
	if p80.Latency.Count() != 4 || p80.UnknownLatency != 1 || p80.Latency.Max() != uint64(7*time.Millisecond) || p80.Latency.Min() != 3000 {
		t.Errorf("port 80 latency: count %d unknown %d max %d", p80.Latency.Count(), p80.UnknownLatency, p80.Latency.Max())
	}
	// µs slots: 3 -> [2,3], 100 -> [64,127], 5000 -> [4096,8191], 7000 -> same.
	bs := p80.LatencyLog.Buckets()
	if bs[0].From != 2 || bs[0].Count != 1 || bs[len(bs)-1].From != 4096 || bs[len(bs)-1].Count != 2 {
		t.Errorf("port 80 µs buckets %+v", bs)
	}
	p81 := gs[1]
	if p81.Depth.Count() != 2 || p81.Depth.Max() != 5 || p81.Backlog != 4 || p81.Latency.Count() != 0 {
		t.Errorf("port 81: depth count %d max %d backlog %d", p81.Depth.Count(), p81.Depth.Max(), p81.Backlog)
	}

	gl := byListener.Groups(owners, nil)
	if len(gl) != 4 {
		t.Fatalf("by listener: %d groups, want 4 (SO_REUSEPORT members apart)", len(gl))
	}
	// Sorted by netns, port, address: 0.0.0.0:80 ×2 (ids 1, 2), [::]:80, :81.
	if gl[0].Listeners[0] != 1 || gl[1].Listeners[0] != 2 || gl[2].Addrs[0].String() != "::" || gl[3].Port != 81 {
		t.Errorf("listener order: %v %v %v %v", gl[0].Listeners, gl[1].Listeners, gl[2].Addrs, gl[3].Port)
	}
	if gl[0].Latency.Count() != 2 || gl[1].Latency.Count() != 1 || len(gl[1].Owners) != 1 || gl[1].Owners[0].PID != 8 {
		t.Errorf("reuseport members: %d and %d accepts, owners %+v", gl[0].Latency.Count(), gl[1].Latency.Count(), gl[1].Owners)
	}
	if _, err := ParseGroupBy("pid"); err == nil {
		t.Error("bad grouping accepted")
	}
}

// The kernel's histograms replace what a sampled stream showed: a listener
// seen in one sampled event, one known only from the snapshot, one in
// neither (left out).
func TestLatencyUseKernel(t *testing.T) {
	ep := tracer.Endpoint{Netns: 1, Addr: netip.MustParseAddr("127.0.0.1"), Port: 80}
	snapEP := tracer.Endpoint{Netns: 1, Addr: netip.MustParseAddr("127.0.0.1"), Port: 81}
	a := NewLatency(ByListener)
	a.Observe(&tracer.Event{Kind: tracer.KindAccept, Listener: 1, Endpoint: ep, LatencyKnown: true, Latency: time.Second})

	var h1, h2, h3 tracer.Histogram
	for _, v := range []uint64{100_000, 200_000, 300_000, 4_000_000} { // ns
		h1.Latency[hist.Index(tracer.HistPrecision, v)]++
	}
	h1.NoLatency = 2
	for d := uint64(1); d <= 6; d++ {
		h1.Depth[hist.Index(tracer.HistPrecision, d)]++
	}
	h2.Latency[hist.Index(tracer.HistPrecision, 1_000_000)] = 10
	h3.Latency[0] = 1
	a.UseKernel(map[tracer.ListenerID]*tracer.Histogram{1: &h1, 2: &h2, 3: &h3}, nil,
		[]tracer.Listener{{ID: 2, Endpoint: snapEP, AcceptQueueMax: 32}})

	gs := a.Groups(nil, nil)
	if len(gs) != 2 {
		t.Fatalf("%d groups, want 2 (listener 3 cannot be named)", len(gs))
	}
	g1, g2 := gs[0], gs[1]
	if g1.Latency.Count() != 4 || g1.UnknownLatency != 2 || g1.Depth.Count() != 6 || g1.Depth.Max() != 6 {
		t.Errorf("listener 1: %d latencies (%d unknown), %d depths max %d; want the kernel's 4 (2), 6 max 6 — not the 1 s event",
			g1.Latency.Count(), g1.UnknownLatency, g1.Depth.Count(), g1.Depth.Max())
	}
	if p50 := g1.Latency.Quantile(0.5); p50 < 175_000 || p50 > 225_000 {
		t.Errorf("listener 1 p50 %d ns, want 200 µs within 12.5%%", p50)
	}
	if g2.Port != 81 || g2.Latency.Count() != 10 || g2.Backlog != 32 {
		t.Errorf("listener 2 (from the snapshot): port %d, %d latencies, backlog %d", g2.Port, g2.Latency.Count(), g2.Backlog)
	}
	if bs := g2.LatencyLog.Buckets(); len(bs) != 1 || bs[0].From != 512 || bs[0].Count != 10 {
		t.Errorf("listener 2 µs slots %+v, want 10 in [512, 1023]", bs)
	}
}

// Keep (a workload filter) leaves exactly the kept listeners, also in a
// port group shared with refused ones, and UseKernel does not bring the
// refused ones back from the kernel's histograms or the snapshot.
func TestLatencyKeep(t *testing.T) {
	ep := endpointIn(1)
	evs := []tracer.Event{
		{Kind: tracer.KindAccept, Listener: 1, Endpoint: ep("127.0.0.1", 80), LatencyKnown: true, Latency: time.Millisecond},
		{Kind: tracer.KindAccept, Listener: 2, Endpoint: ep("127.0.0.2", 80), LatencyKnown: true, Latency: time.Millisecond},
		{Kind: tracer.KindAccept, Listener: 3, Endpoint: ep("127.0.0.1", 81), LatencyKnown: true, Latency: time.Millisecond},
	}
	owners := map[tracer.ListenerID][]Owner{1: {{PID: 7, Comm: "web"}}, 2: {{PID: 8, Comm: "db"}}, 3: {{PID: 8, Comm: "db"}}}
	deltas := map[tracer.ListenerID]*tracer.Histogram{}
	var snapshot []tracer.Listener
	for id, addr := range map[tracer.ListenerID]string{1: "127.0.0.1", 2: "127.0.0.2", 3: "127.0.0.1"} {
		d := &tracer.Histogram{}
		d.Latency[10] = uint64(id) // 1, 2 and 3 accepts
		deltas[id] = d
		port := uint16(80)
		if id == 3 {
			port = 81
		}
		snapshot = append(snapshot, tracer.Listener{ID: id, Endpoint: ep(addr, port), Inode: uint64(100 + id)})
	}
	a := NewLatency(ByPort)
	for i := range evs {
		a.Observe(&evs[i])
	}
	a.Keep(func(id tracer.ListenerID) bool { return id == 1 })
	a.UseKernel(deltas, nil, snapshot)
	gs := a.Groups(owners, nil)
	if len(gs) != 1 {
		t.Fatalf("%d groups, want only port 80's", len(gs))
	}
	g := gs[0]
	if g.Port != 80 || len(g.Listeners) != 1 || g.Listeners[0] != 1 || len(g.Addrs) != 1 || g.Addrs[0].String() != "127.0.0.1" ||
		len(g.Owners) != 1 || g.Owners[0].PID != 7 || len(g.Inodes) != 1 || g.Inodes[0] != 101 || g.Latency.Count() != 1 {
		t.Errorf("port 80 kept only listener 1: %+v (accepts %d)", g, g.Latency.Count())
	}
}
