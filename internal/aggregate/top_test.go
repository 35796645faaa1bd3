package aggregate

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/synq-trace/synq/tracer"
)

var t0 = time.Unix(1_800_000_000, 0)

func listener(id tracer.ListenerID, port uint16, ino uint64, acc, max, syn, drops uint32) tracer.Listener {
	return tracer.Listener{
		ID: id, Inode: ino,
		Endpoint:       tracer.Endpoint{Netns: 4026532177, Addr: netip.MustParseAddr("127.0.0.1"), Port: port},
		AcceptQueueLen: acc, AcceptQueueMax: max, SynQueueLen: syn, SkDrops: drops,
	}
}

func rowByID(t *testing.T, f Frame, id tracer.ListenerID) Row {
	t.Helper()
	for _, r := range f.Rows {
		if r.ID == id {
			return r
		}
	}
	t.Fatalf("no row for listener %#x in %+v", id, f.Rows)
	return Row{}
}

func TestTopTracepointTier(t *testing.T) {
	info := tracer.Info{Tier: tracer.TierTracepoint, ExactListenDrops: true}
	slow := listener(0xa, 8080, 100, 0, 8, 0, 40) // sk_drops 40 before synq started
	idle := listener(0xb, 8081, 101, 0, 128, 0, 0)
	top := NewTop(info, t0, []tracer.Listener{slow, idle})

	// During the interval: the slow listener's queue fills (events see 9/8),
	// three accepts with known latencies, one without.
	for i, d := range []uint32{3, 9, 7} {
		top.Observe(&tracer.Event{Kind: tracer.KindEnqueue, Listener: 0xa, QueueKnown: true, AcceptQueueLen: d, AcceptQueueMax: 8, SynQueueLen: uint32(i)})
	}
	for _, l := range []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 30 * time.Millisecond} {
		top.Observe(&tracer.Event{Kind: tracer.KindAccept, Listener: 0xa, LatencyKnown: true, Latency: l})
	}
	top.Observe(&tracer.Event{Kind: tracer.KindAccept, Listener: 0xa})
	top.Observe(&tracer.Event{Kind: tracer.KindEnqueue}) // listener unknown

	slow1 := listener(0xa, 8080, 100, 2, 8, 1, 40+30)
	f := top.Refresh(Sample{
		Time:      t0.Add(2 * time.Second),
		Listeners: []tracer.Listener{slow1, idle},
		// sk_drops +30: 4 of them tcp_v4_rcv discards, 20 ACK overflows,
		// 1 other ACK failure: 5 SYN-side drops.
		Counts: map[tracer.ListenerID]tracer.Counts{
			0xa: {Enqueue: 13, Accept: 4, AckOverflow: 20, AckOther: 1, RcvDrops: 4},
			0:   {Enqueue: 1},
		},
		Stats:      tracer.Stats{Lost: 2, RecursionMisses: 1},
		Owners:     map[uint64][]Owner{100: {{PID: 42, Comm: "slow"}}},
		NetnsNames: map[uint32]string{4026532177: "synq-demo"},
	})
	if f.Interval != 2*time.Second || f.RingRecords != 8 || f.Lost != 2 || f.RecursionMisses != 1 || f.UnattributedEnqueues != 1 || f.Tier != tracer.TierTracepoint {
		t.Errorf("frame header %+v", f)
	}
	if len(f.Rows) != 2 {
		t.Fatalf("%d rows, want the 2 listeners of the snapshot", len(f.Rows))
	}
	r := rowByID(t, f, 0xa)
	if r.Drops != 26 || !r.DropsExact || r.SynDerived == nil || *r.SynDerived != 5 || r.AckOverflow != 20 || r.Other != 1 {
		t.Errorf("drops %d exact %v, syn-derived %v, ack-overflow %d, other %d; want 26 exact = 5 + 20 + 1",
			r.Drops, r.DropsExact, r.SynDerived, r.AckOverflow, r.Other)
	}
	if r.Syn != nil || r.Cookies != nil || r.SynQueueFull != nil || r.AcceptQueueFull != nil {
		t.Error("tracepoint tier reports SYN-side values it cannot see")
	}
	if r.Accepts != 4 || r.Enqueued != 13 || f.Rate(r.Accepts) != 2 {
		t.Errorf("accepts %d (%.1f/s) enqueued %d", r.Accepts, f.Rate(r.Accepts), r.Enqueued)
	}
	if r.AcceptQueue != (Queue{Now: 2, Peak: 9, Max: 8}) || r.SynQueue != (Queue{Now: 1, Peak: 2, Max: 8}) {
		t.Errorf("queues accept %+v syn %+v", r.AcceptQueue, r.SynQueue)
	}
	if r.Latency.Count != 3 || r.Latency.Max != 30*time.Millisecond || r.Latency.P50 < 19900*time.Microsecond || r.Latency.P50 > 20100*time.Microsecond {
		t.Errorf("latency %+v, want 3 accepts, p50 20ms, max 30ms", r.Latency)
	}
	if r.NetnsName != "synq-demo" || len(r.Owners) != 1 || r.Owners[0].PID != 42 {
		t.Errorf("netns name %q owners %+v", r.NetnsName, r.Owners)
	}
	if ri := rowByID(t, f, 0xb); ri.Drops != 0 || ri.Latency.Count != 0 || ri.AcceptQueue.Max != 128 {
		t.Errorf("idle listener %+v", ri)
	}

	// Next interval: the counters did not move; the idle listener closed, a
	// new one appeared (with no event), the slow one's address was reused by
	// a new socket (new inode, sk_drops from 0).
	fresh := listener(0xc, 9090, 102, 0, 16, 0, 0)
	reused := listener(0xa, 8080, 200, 0, 4, 0, 3)
	f = top.Refresh(Sample{
		Time:      t0.Add(3 * time.Second),
		Listeners: []tracer.Listener{reused, fresh},
		Counts: map[tracer.ListenerID]tracer.Counts{
			0xa: {Enqueue: 13, Accept: 4, AckOverflow: 20, AckOther: 1, RcvDrops: 4},
			0:   {Enqueue: 1},
		},
	})
	if len(f.Rows) != 2 || f.RingRecords != 0 || f.UnattributedEnqueues != 0 {
		t.Fatalf("second frame %+v", f)
	}
	if r := rowByID(t, f, 0xa); r.Drops != 3 || *r.SynDerived != 3 || r.Accepts != 0 || r.Latency.Count != 0 || r.AcceptQueue.Peak != 0 {
		t.Errorf("reused address: %+v, want 3 drops from the new socket's sk_drops", r)
	}
	if r := rowByID(t, f, 0xc); r.Drops != 0 || r.AcceptQueue.Max != 16 {
		t.Errorf("new listener %+v", r)
	}
}

func TestTopFentryTier(t *testing.T) {
	info := tracer.Info{Tier: tracer.TierFentry, ExactListenDrops: true}
	l := listener(1, 80, 7, 0, 128, 0, 0)
	top := NewTop(info, t0, []tracer.Listener{l})
	c := tracer.Counts{Syn: 100, Cookie: 5, Enqueue: 80, Accept: 79, DropSynQueue: 6, DropAcceptQueue: 7, DropOther: 1, AckOverflow: 2, AckOther: 1}
	f := top.Refresh(Sample{Time: t0.Add(time.Second), Listeners: []tracer.Listener{l}, Counts: map[tracer.ListenerID]tracer.Counts{1: c}})
	r := f.Rows[0]
	if *r.Syn != 100 || *r.Cookies != 5 || *r.SynQueueFull != 6 || *r.AcceptQueueFull != 7 || r.AckOverflow != 2 || r.Other != 2 || r.SynDerived != nil {
		t.Errorf("row %+v", r)
	}
	if r.Drops != 6+7+1+2+1 {
		t.Errorf("drops %d, want the sum of reasons 17", r.Drops)
	}
	// The kernel's LRU map evicted and restarted the entry: counters are
	// smaller than last time, count from zero.
	f = top.Refresh(Sample{Time: t0.Add(2 * time.Second), Listeners: []tracer.Listener{l},
		Counts: map[tracer.ListenerID]tracer.Counts{1: {Syn: 3, Enqueue: 3}}})
	if r := f.Rows[0]; *r.Syn != 3 || r.Enqueued != 3 || r.Drops != 0 {
		t.Errorf("after eviction: %+v", r)
	}
}

// An event for a listener created after the snapshot is kept for the next
// interval, not thrown away with closed listeners.
func TestTopEventBeforeSnapshot(t *testing.T) {
	top := NewTop(tracer.Info{Tier: tracer.TierTracepoint}, t0, nil)
	top.Observe(&tracer.Event{Kind: tracer.KindAccept, Listener: 9, LatencyKnown: true, Latency: time.Millisecond})
	if f := top.Refresh(Sample{Time: t0.Add(time.Second)}); len(f.Rows) != 0 {
		t.Fatalf("rows %+v without a snapshot", f.Rows)
	}
	f := top.Refresh(Sample{Time: t0.Add(2 * time.Second), Listeners: []tracer.Listener{listener(9, 1, 1, 0, 1, 0, 0)}})
	if len(f.Rows) != 1 || f.Rows[0].Latency.Count != 1 {
		t.Fatalf("rows %+v, want the listener with its accept", f.Rows)
	}
	// Closed: gone, and with it its state.
	top.Observe(&tracer.Event{Kind: tracer.KindAccept, Listener: 9, LatencyKnown: true, Latency: time.Millisecond})
	top.Refresh(Sample{Time: t0.Add(3 * time.Second)}) // fresh again: kept once
	top.Refresh(Sample{Time: t0.Add(4 * time.Second)})
	if len(top.states) != 0 {
		t.Errorf("state of a closed listener kept: %v", top.states)
	}
}

func TestSort(t *testing.T) {
	mk := func(port uint16, drops, acc uint64, p99 time.Duration, peak, max uint32) Row {
		r := Row{Endpoint: tracer.Endpoint{Port: port, Addr: netip.MustParseAddr("::1")}, Drops: drops, Accepts: acc,
			AcceptQueue: Queue{Peak: peak, Max: max}}
		if p99 > 0 {
			r.Latency = Summary{Count: 1, P99: p99}
		}
		return r
	}
	rows := []Row{mk(1, 0, 5, 0, 1, 128), mk(2, 7, 1, time.Second, 9, 8), mk(3, 7, 9, time.Millisecond, 3, 4), mk(4, 1, 0, 0, 0, 0)}
	for key, want := range map[SortKey][]uint16{
		SortDrops:   {2, 3, 4, 1},
		SortAccepts: {3, 1, 2, 4},
		SortLatency: {2, 3, 1, 4},
		SortQueue:   {2, 3, 1, 4},
		SortSyn:     {2, 3, 4, 1}, // tracepoint tier: enqueued + drops
	} {
		rs := slices.Clone(rows)
		Sort(rs, key)
		var got []uint16
		for _, r := range rs {
			got = append(got, r.Port)
		}
		if !slices.Equal(got, want) {
			t.Errorf("sort by %s: ports %v, want %v", key, got, want)
		}
	}
	if _, err := ParseSortKey("bogus"); err == nil {
		t.Error("bogus sort key accepted")
	}
	if SortQueue.Next() != SortDrops || SortDrops.Next() != SortSyn {
		t.Error("Next does not cycle")
	}
}
