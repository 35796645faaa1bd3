// Package exporter turns synq's per-listener kernel counters, listener
// snapshots and accept events into Prometheus metrics.
//
// Counters and the accept latency histogram come from the tracer's kernel
// maps, read at scrape time, so they stay exact however many events the ring
// buffer loses, and no event per connection crosses it. Events only name
// listeners that no snapshot showed. Gauges (queue lengths) come from an
// iter/tcp snapshot taken at scrape time.
//
// Cardinality is bounded: at most MaxListeners listeners get series of their
// own, chosen by recent activity, and the rest are summed into one series
// labelled "other". A series only ever adds what happened while it was the
// listener's home: every increment lands in exactly one series, so the sum of
// increase() over all series is the exact total whatever the folding did, and
// no series ever goes backwards. A listener never folded has, in its own
// series, everything since synq started (or since it was created). Listeners
// that left the kernel stay exported, frozen, for Expire; a listener that loses
// its slot to a busier one stops being exported at once (its series goes
// stale) and counts on in "other".
//
// A listener series also names its workload (namespace, pod, container of
// the process holding its socket, nameOwners; synq_listener_info the rest),
// and every namespace with an exported listener has its own kernel counters
// and coverage (kernelns.go).
package exporter

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	khist "github.com/synq-trace/synq/internal/hist"
	"github.com/synq-trace/synq/internal/ledger"
	"github.com/synq-trace/synq/tracer"
)

// Options shape an Exporter; zero fields take the defaults shown.
type Options struct {
	// MaxListeners is how many listeners get series of their own (100);
	// the rest are folded into port="other".
	MaxListeners int
	// Expire: a listener gone from the kernel, or idle in a namespace synq
	// cannot snapshot, stops being exported after this long (5m).
	Expire time.Duration
	// Hold: a listener keeps its own series at least this long before a
	// much busier folded one may take its place (1m).
	Hold time.Duration
	// HalfLife of the activity score that ranks listeners (1m).
	HalfLife time.Duration
	// Version for synq_build_info.
	Version string
	// ReconciledNetns is the inode of synq's own namespace, or of --netns:
	// its kernel counters are exported even when none of its listeners has
	// a series of its own.
	ReconciledNetns uint32
	// LatencyBuckets for synq_accept_latency_seconds (DefaultLatencyBuckets).
	LatencyBuckets []float64
	// Now is the clock (time.Now).
	Now func() time.Time
	// Logf reports scrape-time problems, once per distinct message.
	Logf func(format string, a ...any)
	// MaxTracked bounds the folded listeners remembered for ranking
	// (10000 or 10×MaxListeners): a host that churns through listeners
	// forgets the idle ones sooner than Expire.
	MaxTracked int
}

func (o *Options) defaults() {
	if o.MaxListeners <= 0 {
		o.MaxListeners = 100
	}
	if o.Expire <= 0 {
		o.Expire = 5 * time.Minute
	}
	if o.Hold <= 0 {
		o.Hold = time.Minute
	}
	if o.HalfLife <= 0 {
		o.HalfLife = time.Minute
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	if len(o.LatencyBuckets) == 0 {
		o.LatencyBuckets = DefaultLatencyBuckets
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.MaxTracked <= 0 {
		o.MaxTracked = max(10000, 10*o.MaxListeners)
	}
}

// value indexes the per-listener counters synq derives from tracer.Counts.
type value int

const (
	vDropSynQueue value = iota
	vDropAcceptQueue
	vDropAckOverflow
	vDropOther
	vDropSynSide
	vSyn
	vCookie
	vEnqueue
	vAccept
	vSynackRetrans
	nValues
)

type values [nValues]uint64

func (v *values) add(d *values) {
	for i := range v {
		v[i] += d[i]
	}
}

func (v *values) total() uint64 {
	var t uint64
	for _, x := range v {
		t += x
	}
	return t
}

// reasonValue maps a drop reason to its value.
var reasonValue = map[string]value{
	ReasonSynQueueFull:    vDropSynQueue,
	ReasonAcceptQueueFull: vDropAcceptQueue,
	ReasonAckOverflow:     vDropAckOverflow,
	ReasonOther:           vDropOther,
	ReasonSynSide:         vDropSynSide,
}

// key identifies a listener series. Several sockets share one with
// SO_REUSEPORT, and a restarted server's new socket continues its series.
type key struct {
	netns uint32
	addr  netip.Addr
	port  uint16
}

func keyOf(e tracer.Endpoint) key { return key{e.Netns, e.Addr, e.Port} }

func (k key) less(o key) bool {
	if k.netns != o.netns {
		return k.netns < o.netns
	}
	if k.port != o.port {
		return k.port < o.port
	}
	return k.addr.Less(o.addr)
}

func (k key) labels() []string {
	return []string{strconv.FormatUint(uint64(k.netns), 10), k.addr.String(), strconv.FormatUint(uint64(k.port), 10)}
}

// mark is what a listening socket (ledger.Sock) already handed to series.
type mark struct {
	hwm values // derived values already handed to a series
}

// hist is a latency histogram: counts per bucket (the last is +Inf).
type hist struct {
	buckets []uint64
	count   uint64
	sum     float64
}

func newHist(n int) hist { return hist{buckets: make([]uint64, n+1)} }

func (h *hist) add(o *hist) {
	for i := range h.buckets {
		h.buckets[i] += o.buckets[i]
	}
	h.count += o.count
	h.sum += o.sum
}

func (h *hist) reset() {
	clear(h.buckets)
	h.count, h.sum = 0, 0
}

// series is what one listener key exports, or would if it had a slot.
type series struct {
	key
	own         values // exported: added while slotted
	pending     values // this refresh's deltas, before the slot decision
	ownHist     hist
	pendingHist hist
	score       float64
	slotted     bool
	since       time.Time // slotted since
	lastActive  time.Time
	live        bool // a socket of it is in the current snapshot
	accLen      uint64
	accMax      uint64
	synLen      uint64
	owner       *owned // nil until a lookup found one (slotted series only)
}

type gauges struct{ accLen, accMax, synLen uint64 }

// Exporter is a prometheus.Collector reading its Source at scrape time.
type Exporter struct {
	src  Source
	opts Options
	info tracer.Info
	caps tracer.Capabilities

	reasons  []string
	families map[*prometheus.Desc]value // per-listener counter families this tier has
	latency  bool
	// toProm maps a kernel latency bucket to its Prometheus bucket.
	toProm [tracer.LatencyBuckets]int

	mu          sync.Mutex
	tally       *ledger.Tally
	marks       map[tracer.ListenerID]*mark
	series      map[key]*series
	other       values
	otherHist   hist
	otherUsed   bool
	otherLive   bool
	otherGauges gauges
	// kernel: the counters of each network namespace the walk read, and
	// what synq attributed to its listeners since its baseline.
	kernel map[uint32]*nsKernel
	gen    uint64 // refreshes so far (New is 0)
	// slottedNetns: the namespaces of the listeners with a slot.
	slottedNetns map[uint32]bool
	lost         uint64
	lastRefresh  time.Time
	err          error // the last refresh's failure to read the tracer
	health       scrapeHealth
	logged       map[string]bool
}

// New takes the baseline: the listeners that exist now and the kernel
// counters of every namespace walked. Everything is exported relative to
// it.
func New(src Source, opts Options) (*Exporter, error) {
	opts.defaults()
	e := &Exporter{
		src: src, opts: opts, info: src.Info(),
		tally: ledger.NewTally(), marks: map[tracer.ListenerID]*mark{}, series: map[key]*series{}, kernel: map[uint32]*nsKernel{},
		otherHist: newHist(len(opts.LatencyBuckets)), logged: map[string]bool{},
	}
	e.caps = e.info.Caps()
	e.slottedNetns = map[uint32]bool{}
	if m, ok := src.(mibSelector); ok {
		m.SelectMIB(e.wantMIB)
	}
	e.shape()
	e.toProm = promBuckets(opts.LatencyBuckets)
	// Snapshot first, counters second: the same order as every refresh
	// (see ledger.Tally.Update for why).
	v, err := src.Walk()
	if err != nil {
		return nil, fmt.Errorf("snapshot listeners: %w", err)
	}
	counts, err := src.Counts()
	if err != nil {
		return nil, err
	}
	now := opts.Now()
	e.tally.Update(v, counts, nil)
	e.tally.Each(func(s *ledger.Sock) {
		if s.Listed {
			e.seriesFor(keyOf(s.Endpoint), now)
		}
	})
	e.readKernel(v)
	return e, nil
}

// shape decides what this tier can export.
func (e *Exporter) shape() {
	if e.caps.SynSide {
		e.reasons = []string{ReasonSynQueueFull, ReasonAcceptQueueFull, ReasonAckOverflow, ReasonOther}
	} else {
		// The reasons are invisible: what ListenDrops counts beyond the
		// ACK side is a SYN (ledger.Breakdown).
		e.reasons = []string{ReasonSynSide, ReasonAckOverflow}
	}
	e.families = map[*prometheus.Desc]value{}
	for _, k := range e.info.Kinds() {
		switch k {
		case tracer.KindSyn:
			e.families[descSyn] = vSyn
		case tracer.KindCookie:
			e.families[descCookies] = vCookie
		case tracer.KindEnqueue:
			e.families[descEnqueued] = vEnqueue
		case tracer.KindSynackRetrans:
			e.families[descSynackRetrans] = vSynackRetrans
		case tracer.KindAccept:
			e.families[descAccepted] = vAccept
			e.latency = true
		}
	}
}

// Kinds are the event kinds the exporter wants streamed: overflows, whose
// events name their listener, which attributes the counters of a listener no
// snapshot showed (it lived between two scrapes, or in a namespace synq cannot
// enter). Accepts are hooked (tracer.Config.AcceptLatency) but not streamed:
// their latency histogram is kept in the kernel, so a connection storm sends
// no event per connection. SYN-side events would name more listeners, but a
// SYN flood would make one event per SYN.
func Kinds() []tracer.Kind { return []tracer.Kind{tracer.KindAckOverflow} }

// promBuckets maps each kernel latency bucket to the first Prometheus bucket
// (index into bounds, len(bounds) = +Inf) that holds the whole kernel bucket,
// so a latency is never exported as faster than it was; it may land one
// Prometheus bucket too high when its kernel bucket (at most 25% wide)
// straddles a bound.
func promBuckets(bounds []float64) (m [tracer.LatencyBuckets]int) {
	for i := range m {
		if i == len(m)-1 {
			m[i] = len(bounds) // the last kernel bucket is open-ended
			continue
		}
		hi := khist.BucketLow(tracer.HistPrecision, i+1) - 1 // ns, inclusive
		m[i] = sort.SearchFloat64s(bounds, float64(hi)/1e9)
	}
	return m
}

// addLatency adds a kernel histogram delta to a Prometheus one.
func (e *Exporter) addLatency(h *hist, d *tracer.Histogram) {
	for i, n := range d.Latency {
		if n > 0 {
			h.buckets[e.toProm[i]] += n
			h.count += n
		}
	}
	h.sum += d.LatencySum.Seconds()
}

func (e *Exporter) logf(format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	if !e.logged[msg] {
		e.logged[msg] = true
		e.opts.Logf("%s", msg)
	}
}

func (e *Exporter) seriesFor(k key, now time.Time) *series {
	se, ok := e.series[k]
	if !ok {
		se = &series{key: k, lastActive: now, ownHist: newHist(len(e.opts.LatencyBuckets)), pendingHist: newHist(len(e.opts.LatencyBuckets))}
		e.series[k] = se
	}
	return se
}

// Observe takes one event from tracer.Read: it names its listener. Safe to
// call concurrently with scrapes.
func (e *Exporter) Observe(ev *tracer.Event) { e.tally.Observe(ev) }

// derive computes a socket's counters since synq first saw it.
func (e *Exporter) derive(s *ledger.Sock) values {
	a := s.Counts
	var v values
	v[vSyn], v[vCookie], v[vEnqueue], v[vAccept], v[vSynackRetrans] = a.Syn, a.Cookie, a.Enqueue, a.Accept, a.SynackRetrans
	v[vDropAckOverflow] = a.AckOverflow
	if !e.caps.SynSide && !s.Snapped {
		// The SYN side comes from sk_drops, which no snapshot showed
		// (a namespace synq cannot enter): unknown, no increase.
		return v
	}
	d := ledger.Breakdown(e.info, s.First, s.Last, a)
	v[vDropOther] = d.Other
	if d.SynSide != nil {
		v[vDropSynSide] = *d.SynSide
	} else {
		v[vDropSynQueue], v[vDropAcceptQueue] = *d.SynQueueFull, *d.AcceptQueueFull
	}
	return v
}
