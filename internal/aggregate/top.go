// Package aggregate turns the tracer's event stream, its exact per-listener
// counters and iter/tcp snapshots into per-listener views: rates, drops by
// reason, queue depths now and at their peak, and accept latency
// distributions (synq top, synq latency).
package aggregate

import (
	"cmp"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/synq-trace/synq/internal/hist"
	"github.com/synq-trace/synq/internal/ledger"
	"github.com/synq-trace/synq/tracer"
)

// Top keeps, per listener, what happened since the last refresh: the
// counters through the ledger, queue peaks and accept latency from events.
// Observe may be called from the event reader's goroutine while Refresh
// runs elsewhere.
type Top struct {
	info  tracer.Info
	tally *ledger.Tally

	// mib: each namespace's counters at the last refresh, from which
	// SYN-side drop reasons are settled (ledger.Settle).
	mib map[uint32]map[string]int64

	mu     sync.Mutex
	last   time.Time
	states map[tracer.ListenerID]*listenerState
	events uint64 // events observed since the last refresh
	acc    acceptors
}

// listenerState is what events said about a listener during the interval.
type listenerState struct {
	fresh            bool // created by an event, not yet in any snapshot
	accPeak, synPeak uint32
	lat              *hist.Hist
}

// NewTop starts the first interval at start. initial is a walk taken before
// the tracer was attached: it is the baseline of each listener's sk_drops,
// from which SYN-side drops are derived where the hooks cannot see them. The
// tracer's counters start from zero when it is opened.
func NewTop(info tracer.Info, start time.Time, initial []tracer.Listener) *Top {
	return NewTopView(info, start, ledger.ViewOf(initial))
}

// NewTopView is NewTop from a ledger walk.
func NewTopView(info tracer.Info, start time.Time, initial *ledger.View) *Top {
	t := &Top{info: info, tally: ledger.NewTally(), last: start, states: map[tracer.ListenerID]*listenerState{}, acc: acceptors{}}
	t.tally.Update(initial, nil, nil)
	t.mib = mibs(initial)
	for _, l := range initial.Listeners() {
		t.states[l.ID] = &listenerState{lat: hist.New()}
	}
	return t
}

// Observe accounts one event: queue depths for the peaks, accept latency.
func (t *Top) Observe(ev *tracer.Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.events++
	if ev.Listener == 0 {
		return
	}
	t.tally.Observe(ev)
	t.acc.observe(ev)
	s := t.states[ev.Listener]
	if s == nil {
		s = &listenerState{fresh: true, lat: hist.New()}
		t.states[ev.Listener] = s
	}
	if ev.QueueKnown {
		s.accPeak = max(s.accPeak, ev.AcceptQueueLen)
		s.synPeak = max(s.synPeak, ev.SynQueueLen)
	}
	if ev.Kind == tracer.KindAccept && ev.LatencyKnown && ev.Latency >= 0 {
		s.lat.Record(uint64(ev.Latency))
	}
}

// Sample is what the caller read from the kernel at the end of an interval.
type Sample struct {
	Time time.Time
	// View is the walk (ledger.Walker); without it, Listeners are.
	View      *ledger.View
	Listeners []tracer.Listener                   // iter/tcp snapshot, already filtered
	Counts    map[tracer.ListenerID]tracer.Counts // tracer.Counts
	// Hists (tracer.Histograms): when set, accept latency and queue peaks
	// come from the kernel's histograms, exact whatever the event stream
	// lost or sampled; otherwise from the events observed.
	Hists map[tracer.ListenerID]*tracer.Histogram
	// Maxima (tracer.Maxima, read with Hists): the interval's exact
	// longest latency and deepest enqueue; without them, maxima are the
	// bounds of the histograms' buckets.
	Maxima     map[tracer.ListenerID]tracer.Max
	Stats      tracer.Stats
	Owners     map[uint64][]Owner // by socket inode
	NetnsNames map[uint32]string
}

// Frame is one refresh: every listener of the snapshot with what it did
// during the interval.
type Frame struct {
	Time     time.Time
	Interval time.Duration
	Tier     tracer.Tier // for its name only: Caps says what it sees
	Caps     tracer.Capabilities
	Kernel   string
	// RingRecords: records read from the ring buffer in the interval (the
	// event stream: not the counts, which the kernel keeps in maps).
	RingRecords uint64
	// Lost: records the ring buffer could not take or that could not be
	// decoded, since the start; RecursionMisses: program runs the kernel
	// skipped (missing from the counts too).
	Lost, RecursionMisses uint64
	// UnattributedEnqueues: enqueues whose listener the hooks could not see
	// (kernels without the sk_data_ready tracepoint), in the interval.
	UnattributedEnqueues uint64
	Rows                 []Row
	// Coverage: the kernel's counters against synq's since the start,
	// summed over the namespaces traced (set by the caller; nil when not
	// reconciled).
	Coverage []Coverage
}

// SynSide says the rows carry the SYN side by reason (SYNs, cookies, both
// SYN-side reasons) rather than SYN-side drops derived from ListenDrops: what
// the hooks see (Caps.SynSide), as the rows show it.
func (f *Frame) SynSide() bool {
	if len(f.Rows) > 0 {
		return f.Rows[0].SynDerived == nil
	}
	return f.Caps.SynSide
}

// Coverage is one of the kernel's listen-path counters over the namespaces
// traced since the start, with what synq counted of it.
type Coverage struct {
	Counter string
	Kernel  uint64
	// Synq: what synq counted; nil where the hooks cannot attribute the
	// counter to listeners on this kernel (Note says why).
	Synq *uint64
	// Claimed: synq counts every increment (Synq == Kernel is expected).
	Claimed bool
	Note    string
}

// Row is one listener over one interval. Counts are exact kernel counter
// deltas; pointers are nil where the tier cannot know the value.
type Row struct {
	ID tracer.ListenerID
	tracer.Endpoint
	NetnsName string
	Inode     uint64
	// Member is the listener's number in its SO_REUSEPORT group (Members),
	// 0 when it is alone on its address and port.
	Member int
	// Owners hold the socket; the ones seen accepting from it come first
	// (Owner.Accepting).
	Owners []Owner

	Syn      *uint64 // nil on the tracepoint tier
	Cookies  *uint64 // nil on the tracepoint tier
	Enqueued uint64
	Accepts  uint64

	// Drops is the listener's share of the kernel's ListenDrops; DropsExact
	// is false where the tier approximates it (see tracer.ListenDrops).
	Drops      uint64
	DropsExact bool
	// By reason; they add up to Drops. The fentry and kprobe tiers see the
	// SYN-side reasons; the tracepoint tier only their sum, SynDerived.
	SynQueueFull    *uint64 // SYN dropped: SYN queue full (TCPReqQFullDrop)
	AcceptQueueFull *uint64 // SYN dropped: accept queue full (ListenOverflows)
	SynOther        *uint64 // SYN dropped with room in the queues (in Other too)
	SynDerived      *uint64 // tracepoint tier: SYN-side drops = Drops − AckOverflow − Other
	// SynReason: the reason of the SYN-side drops in words ("" if none);
	// SettledBy: which netns counters told it where the hooks cannot.
	SynReason, SettledBy string
	AckOverflow          uint64 // final ACK dropped: accept queue full (half-open)
	Other                uint64 // ListenDrops with room in the queues
	// SynackRetrans: SYN-ACKs the listener retransmitted; nil where the
	// hook is not attached (Caps.SynackRetrans).
	SynackRetrans *uint64

	AcceptQueue Queue
	SynQueue    Queue
	Latency     Summary // accept latency of connections accepted in the interval
}

// Queue is a queue's depth at the end of the interval, its peak during it
// (over snapshots and the depths events saw) and its limit.
type Queue struct{ Now, Peak, Max uint32 }

// Summary condenses a latency histogram.
type Summary struct {
	Count         uint64
	P50, P99, Max time.Duration
}

// Summarize takes p50/p99/max from a histogram of nanoseconds.
func Summarize(h *hist.Hist) Summary {
	return Summary{
		Count: h.Count(),
		P50:   time.Duration(h.Quantile(0.5)),
		P99:   time.Duration(h.Quantile(0.99)),
		Max:   time.Duration(h.Max()),
	}
}

// Rate is n per second of the interval.
func (f *Frame) Rate(n uint64) float64 {
	if f.Interval <= 0 {
		return 0
	}
	return float64(n) / f.Interval.Seconds()
}

// Refresh closes the interval at s.Time and returns it. Listeners missing
// from the snapshot are gone (closed); listeners in it appear even if they
// saw no event.
func (t *Top) Refresh(s Sample) Frame {
	v := s.View
	if v == nil {
		v = ledger.ViewOf(s.Listeners)
	}
	t.tally.Update(v, s.Counts, s.Hists)
	t.mu.Lock()
	defer t.mu.Unlock()
	f := Frame{
		Time: s.Time, Interval: s.Time.Sub(t.last), Tier: t.info.Tier, Caps: t.info.Caps(), Kernel: t.info.Kernel,
		RingRecords: t.events,
		Lost:        s.Stats.Lost + s.Stats.BadRecords, RecursionMisses: s.Stats.RecursionMisses,
	}
	if un := t.tally.Get(0); un != nil {
		f.UnattributedEnqueues = un.Delta.Enqueue
	}
	ls := v.Listeners()
	members := Members(ls)
	inSnap := make(map[tracer.ListenerID]bool, len(ls))
	f.Rows = make([]Row, 0, len(ls))
	drops := make([]ledger.Drops, 0, len(ls))
	for _, l := range ls {
		inSnap[l.ID] = true
		st := t.states[l.ID]
		if st == nil {
			st = &listenerState{lat: hist.New()}
			t.states[l.ID] = st
		}
		sock := t.tally.Get(l.ID)
		if sock == nil {
			continue // cannot be: the tally was just updated with l
		}
		dh := sock.Hist
		if s.Hists == nil {
			dh = nil
		}
		d := sock.Delta
		if sock.FirstListed {
			// Counted before any snapshot showed it (created after the
			// last one): this interval's too.
			d = sock.Counts
		}
		r := t.row(l, sock.Before, d, st, dh, s)
		r.Member = members[l.Inode]
		r.Owners = MarkAccepting(r.Owners, t.acc[l.ID])
		f.Rows = append(f.Rows, r)
		drops = append(drops, t.breakdown(sock.Before, l, d))
		st.fresh = false
		st.accPeak, st.synPeak = 0, 0
		st.lat.Reset()
	}
	t.settle(v, f.Rows, drops)
	for id, st := range t.states {
		if inSnap[id] {
			continue
		}
		if st.fresh {
			// Seen in events after the snapshot was taken: keep for the
			// next interval.
			st.fresh = false
			continue
		}
		delete(t.states, id)
		delete(t.acc, id)
	}
	t.events = 0
	t.last = s.Time
	return f
}

func (t *Top) row(l, before tracer.Listener, d tracer.Counts, st *listenerState, dh *tracer.Histogram, s Sample) Row {
	r := Row{
		ID: l.ID, Endpoint: l.Endpoint, NetnsName: s.NetnsNames[l.Netns], Inode: l.Inode, Owners: s.Owners[l.Inode],
		Enqueued: d.Enqueue, Accepts: d.Accept,
		AcceptQueue: Queue{Now: l.AcceptQueueLen, Peak: max(st.accPeak, l.AcceptQueueLen), Max: l.AcceptQueueMax},
		// The SYN queue counts as full when qlen > sk_max_ack_backlog
		// (inet_csk_reqsk_queue_is_full): its limit is the backlog too.
		SynQueue: Queue{Now: l.SynQueueLen, Peak: max(st.synPeak, l.SynQueueLen), Max: l.AcceptQueueMax},
		Latency:  Summarize(st.lat),
	}
	if dh != nil {
		m, ok := s.Maxima[l.ID]
		r.Latency = Summarize(WithMax(hist.FromBuckets(tracer.HistPrecision, dh.Latency[:]), dh.Latency[:], uint64(m.Latency)))
		// The deepest enqueue of the interval: exact from the kernel's
		// maxima, else at least its bucket's low bound.
		if d := WithMax(hist.FromBuckets(tracer.HistPrecision, dh.Depth[:]), dh.Depth[:], uint64(m.Depth)); d.Count() > 0 {
			if ok && d.Max() == uint64(m.Depth) {
				r.AcceptQueue.Peak = max(r.AcceptQueue.Peak, m.Depth)
			} else {
				r.AcceptQueue.Peak = max(r.AcceptQueue.Peak, uint32(hist.BucketLow(tracer.HistPrecision, hist.Index(tracer.HistPrecision, d.Max()))))
			}
		}
	}
	if t.info.Caps().SynSide {
		r.Syn, r.Cookies = ptr(d.Syn), ptr(d.Cookie)
	}
	if t.info.Caps().SynackRetrans {
		r.SynackRetrans = ptr(d.SynackRetrans)
	}
	return r
}

func ptr(v uint64) *uint64 { return &v }

func (t *Top) breakdown(before, l tracer.Listener, d tracer.Counts) ledger.Drops {
	return ledger.Breakdown(t.info, before, l, d)
}

// settle fills the rows' drops by reason, with the SYN-side reasons the
// hooks cannot see taken from each namespace's counters over the interval
// where they settle it (ledger.Settle).
func (t *Top) settle(v *ledger.View, rows []Row, drops []ledger.Drops) {
	cur := mibs(v)
	byNetns := map[uint32][]*ledger.Drops{}
	for i := range rows {
		byNetns[rows[i].Netns] = append(byNetns[rows[i].Netns], &drops[i])
	}
	for ns, ds := range byNetns {
		before, after := t.mib[ns], cur[ns]
		if before == nil || after == nil {
			continue
		}
		delta := map[string]int64{}
		for k, v := range after {
			if b, ok := before[k]; ok {
				delta[k] = v - b
			}
		}
		if n, ok := ledger.NetnsDropsOf(delta); ok {
			ledger.Settle(n, t.info.Caps().AckOverflow, ds)
		}
	}
	for i := range rows {
		r, b := &rows[i], drops[i]
		r.Drops, r.DropsExact = b.Total, b.Exact
		r.AckOverflow, r.Other = b.AckOverflow, b.Other
		r.SynQueueFull, r.AcceptQueueFull, r.SynOther, r.SynDerived = b.SynQueueFull, b.AcceptQueueFull, b.SynOther, b.SynSide
		r.SynReason, r.SettledBy = b.SynReason(), b.SettledBy
	}
	t.mib = cur
}

// mibs maps each namespace of a walk whose counters were read to them.
func mibs(v *ledger.View) map[uint32]map[string]int64 {
	out := map[uint32]map[string]int64{}
	for _, n := range v.Netns {
		if n.Err == nil && n.MIB != nil {
			out[uint32(n.NS.Inode)] = n.MIB
		}
	}
	return out
}

// SortKey orders the rows of a Frame.
type SortKey string

const (
	SortDrops   SortKey = "drops"   // drops in the interval
	SortSyn     SortKey = "syn"     // SYNs (enqueues + drops on the tracepoint tier)
	SortAccepts SortKey = "accepts" // accepts
	SortLatency SortKey = "latency" // accept latency p99
	SortQueue   SortKey = "queue"   // accept queue peak relative to its limit
)

// SortKeys lists the keys in the order synq top cycles through them.
var SortKeys = []SortKey{SortDrops, SortSyn, SortAccepts, SortLatency, SortQueue}

// ParseSortKey validates a --sort value.
func ParseSortKey(s string) (SortKey, error) {
	for _, k := range SortKeys {
		if string(k) == s {
			return k, nil
		}
	}
	return "", fmt.Errorf("unknown sort key %q (want drops, syn, accepts, latency or queue)", s)
}

// Next is the key after k in SortKeys.
func (k SortKey) Next() SortKey {
	i := slices.Index(SortKeys, k)
	return SortKeys[(i+1)%len(SortKeys)]
}

// SynSeen is the SYNs a row saw: exact on the fentry/kprobe tiers; on the
// tracepoint tier the connections that completed or were dropped, the
// closest it can see.
func (r *Row) SynSeen() uint64 {
	if r.Syn != nil {
		return *r.Syn
	}
	return r.Enqueued + r.Drops
}

// Sort orders rows by key, largest first, then by netns, port and address
// so that equal rows keep their place between refreshes.
func Sort(rows []Row, key SortKey) {
	metric := func(r *Row) float64 {
		switch key {
		case SortSyn:
			return float64(r.SynSeen())
		case SortAccepts:
			return float64(r.Accepts)
		case SortLatency:
			if r.Latency.Count == 0 {
				return -1
			}
			return float64(r.Latency.P99)
		case SortQueue:
			return float64(r.AcceptQueue.Peak) / float64(max(r.AcceptQueue.Max, 1))
		}
		return float64(r.Drops)
	}
	slices.SortStableFunc(rows, func(a, b Row) int {
		if c := cmp.Compare(metric(&b), metric(&a)); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Netns, b.Netns); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Port, b.Port); c != 0 {
			return c
		}
		if c := a.Addr.Compare(b.Addr); c != 0 {
			return c
		}
		return cmp.Compare(a.Inode, b.Inode)
	})
}
