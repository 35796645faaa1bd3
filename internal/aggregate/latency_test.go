package aggregate

import (
	"net/netip"
	"testing"
	"time"

	"github.com/synq-trace/synq/tracer"
)

func TestLatencyGroups(t *testing.T) {
	ep := func(addr string, port uint16) tracer.Endpoint {
		return tracer.Endpoint{Netns: 1, Addr: netip.MustParseAddr(addr), Port: port}
	}
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
