package ledger

import (
	"sync"

	"github.com/synq-trace/synq/tracer"
)

// Sock is one listening socket as the ledger accounts it: the tracer's
// counters are kept per kernel address (ListenerID), which the kernel reuses;
// the socket inode tells one incarnation at an address from the next.
type Sock struct {
	ID tracer.ListenerID
	// Endpoint names the listener, from a snapshot or, for one no snapshot
	// showed, from an event (HasEndpoint).
	tracer.Endpoint
	HasEndpoint bool
	Inode       uint64 // 0 until a snapshot shows it
	// First is the listener when this incarnation's accounting began: its
	// SkDrops is the sk_drops baseline (0 for a socket created since).
	// Last is the latest snapshot that showed it; Before the one before
	// (First if none): the sk_drops baseline of this refresh's Delta.
	First, Last, Before tracer.Listener
	Snapped             bool // First, Last and Before are set
	// Counts: counted since this incarnation's accounting began. Delta: in
	// the last refresh.
	Counts, Delta tracer.Counts
	// Hist is the last refresh's histogram delta; nil when the listener
	// has no histogram entry.
	Hist *tracer.Histogram
	// Listed: in the last refresh's snapshot; FirstListed: for the first
	// time (Counts may hold more than Delta: what it counted before). New:
	// a new incarnation began in the last refresh (a new socket at an old
	// one's address).
	Listed, FirstListed, New bool
	// Closed: a later listing of its namespace no longer showed this
	// incarnation. Earlier: the sk_drops that the incarnations before it at
	// this address counted (Last-First), kept only with PerNetns.
	Closed  bool
	Earlier uint64

	netns  uint64            // the namespace whose listing showed it
	prev   tracer.Counts     // the map's value at the previous refresh
	prevH  *tracer.Histogram // the histogram map's value at the previous refresh
	inMap  bool
	inHist bool
	// pre: counted before the baseline, which did not show it: its sk_drops
	// so far are unknown.
	pre bool
}

// Tally accounts every listener over time: the counter deltas, the
// incarnations and their sk_drops baselines, and the endpoints events name.
// Observe may run concurrently with Update.
type Tally struct {
	mu    sync.Mutex
	socks map[tracer.ListenerID]*Sock
	// known: namespaces listed before; atStart: namespaces the baseline
	// found, listed or not. A listener first listed after the baseline was
	// created since (its sk_drops count from 0) if its namespace was known,
	// or did not exist at the start; not if synq could not list it then.
	known, atStart map[uint32]bool
	started        bool
	learned        map[tracer.ListenerID]tracer.Endpoint

	// PerNetns (set before the first Update) starts each namespace's window
	// at its own first listing, for a consumer that also takes each
	// namespace's counters then (reconcile): what that listing shows keeps
	// its sk_drops as baseline, a socket listed later there counts from 0.
	// A closed incarnation's sk_drops since its baseline are kept (Earlier,
	// or the Sock itself while Closed) until they add nothing.
	PerNetns bool
}

// SkDrops is what every incarnation at this address added to sk_drops since
// its baseline, as far as listings showed; 0 unless Snapped.
func (s *Sock) SkDrops() uint64 {
	if !s.Snapped {
		return s.Earlier
	}
	return s.Earlier + uint64(s.Last.SkDrops-s.First.SkDrops)
}

// maxLearned bounds the listener names events teach between two refreshes.
const maxLearned = 1 << 16

// NewTally starts empty; the first Update is the baseline.
func NewTally() *Tally {
	return &Tally{socks: map[tracer.ListenerID]*Sock{}, known: map[uint32]bool{}, atStart: map[uint32]bool{},
		learned: map[tracer.ListenerID]tracer.Endpoint{}}
}

// Observe learns the endpoint of an event's listener.
func (t *Tally) Observe(ev *tracer.Event) {
	if ev.Listener == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if s, ok := t.socks[ev.Listener]; ok && s.HasEndpoint {
		return
	}
	if _, ok := t.learned[ev.Listener]; ok || len(t.learned) < maxLearned {
		t.learned[ev.Listener] = ev.Endpoint
	}
}

// Update accounts one refresh: a walk and the tracer's maps read after it
// (hists may be nil). The first Update is the baseline: what the counters
// and sk_drops held then is left out. Listeners that left every source are
// forgotten, unless the walk was incomplete.
//
// The walk is read before the counters: a drop between the two then shows
// in the counters first, and sk_drops-derived drops can only lag, never run
// ahead.
func (t *Tally) Update(v *View, counts map[tracer.ListenerID]tracer.Counts, hists map[tracer.ListenerID]*tracer.Histogram) {
	t.mu.Lock()
	defer t.mu.Unlock()
	baseline := !t.started
	t.started = true
	for _, s := range t.socks {
		s.Listed, s.FirstListed, s.New, s.inMap, s.inHist, s.Hist, s.Delta = false, false, false, false, false, nil, tracer.Counts{}
	}
	for _, nv := range v.Netns {
		ino := uint32(nv.NS.Inode)
		if baseline {
			t.atStart[ino] = true
		}
		if nv.Err != nil {
			continue
		}
		fresh := !baseline && (t.known[ino] || !t.atStart[ino])
		if t.PerNetns {
			fresh = t.known[ino]
		}
		for _, l := range nv.Listeners {
			s, ok := t.socks[l.ID]
			switch {
			case !ok:
				s = &Sock{ID: l.ID}
				t.socks[l.ID] = s
			case s.Snapped && s.Inode != l.Inode:
				ns := &Sock{ID: l.ID, prev: s.prev, New: true}
				if t.PerNetns {
					ns.Earlier = s.SkDrops()
				}
				s = ns
				t.socks[l.ID] = s
			}
			if !s.Snapped {
				s.First, s.Before, s.Snapped, s.FirstListed = l, l, true, true
				if t.PerNetns && fresh || !t.PerNetns && (s.New || !s.pre && fresh) {
					s.First.SkDrops, s.Before.SkDrops = 0, 0
				}
			} else {
				s.Before = s.Last
			}
			s.Inode, s.Endpoint, s.HasEndpoint, s.Last, s.Listed = l.Inode, l.Endpoint, true, l, true
			s.Closed, s.netns = false, nv.NS.Inode
		}
	}
	listedOK := map[uint64]bool{}
	for _, nv := range v.Netns {
		if nv.Err == nil {
			t.known[uint32(nv.NS.Inode)] = true
			listedOK[nv.NS.Inode] = true
		}
	}
	for _, s := range t.socks {
		if s.Snapped && !s.Listed && listedOK[s.netns] {
			s.Closed = true
		}
	}
	for id, c := range counts {
		s := t.sock(id, baseline)
		if baseline {
			s.prev = c
		}
		s.Delta = c.Sub(s.prev)
		s.Counts = s.Counts.Add(s.Delta)
		s.prev, s.inMap = c, true
	}
	for id, h := range hists {
		s := t.sock(id, baseline)
		if baseline {
			s.prevH = h
		}
		s.Hist = h.Sub(s.prevH)
		s.prevH, s.inHist = h, true
	}
	for id, ep := range t.learned {
		if s, ok := t.socks[id]; ok && !s.HasEndpoint {
			s.Endpoint, s.HasEndpoint = ep, true
		}
	}
	clear(t.learned)
	complete := v.Complete()
	for id, s := range t.socks {
		if !s.inMap {
			// Evicted or never counted: a later entry counts from zero.
			s.prev = tracer.Counts{}
		}
		if !s.inHist {
			s.prevH = nil
		}
		switch {
		case !t.PerNetns:
			if !s.Listed && !s.inMap && !s.inHist && complete {
				delete(t.socks, id)
			}
		case s.inMap || s.inHist:
		case !s.Snapped && s.Earlier == 0, s.Closed && s.SkDrops() == 0:
			// Adds nothing to any sum: keep memory bounded on hosts
			// where listeners come and go.
			delete(t.socks, id)
		}
	}
}

// sock is the listener at id, new if none: one the baseline did not list
// was counted before it (pre).
func (t *Tally) sock(id tracer.ListenerID, baseline bool) *Sock {
	s, ok := t.socks[id]
	if !ok {
		s = &Sock{ID: id, pre: baseline}
		t.socks[id] = s
	}
	return s
}

// Each calls fn for every listener the ledger accounts, with the lock held:
// fn must not call back into the Tally.
func (t *Tally) Each(fn func(*Sock)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.socks {
		fn(s)
	}
}

// Get returns the listener at id, nil if none.
func (t *Tally) Get(id tracer.ListenerID) *Sock {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.socks[id]
}
