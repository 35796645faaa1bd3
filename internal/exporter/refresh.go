package exporter

import (
	"fmt"
	"math"
	"time"

	"github.com/synq-trace/synq/internal/ledger"
	"github.com/synq-trace/synq/tracer"
)

// refresh reads the source and moves everything that happened since the
// last refresh into the series.
func (e *Exporter) refresh(now time.Time) error {
	// The snapshot is read before the counters: a drop between the two
	// then shows in the counters first, and the tracepoint tier's
	// sk_drops-based SYN side can only lag by it, never run ahead (series
	// keep their high-water mark, so a lead would stick).
	e.health.begin()
	e.gen++
	v, lerr := e.src.Walk()
	e.health.walked(v, lerr)
	if lerr != nil {
		e.logf("snapshot listeners: %v", lerr)
	}
	counts, err := e.src.Counts()
	e.health.read(SourceCounts, err)
	if err != nil {
		e.err = fmt.Errorf("read listener counters: %w", err)
		return e.err
	}
	var hists map[tracer.ListenerID]*tracer.Histogram
	if e.latency {
		hists, err = e.src.Histograms()
		e.health.read(SourceHistograms, err)
		if err != nil {
			e.err = fmt.Errorf("read listener histograms: %w", err)
			return e.err
		}
	}
	st, err := e.src.Stats()
	e.health.read(SourceStats, err)
	if err != nil {
		e.err = fmt.Errorf("read loss counters: %w", err)
		return e.err
	}
	e.err = nil
	e.lost = st.Lost + st.RecursionMisses + st.BadRecords
	e.readKernel(v)

	if v == nil {
		// No listing at all: account the counters, forget nobody.
		v = &ledger.View{Netns: []ledger.NetnsView{{Err: lerr}}}
	}
	e.tally.Update(v, counts, hists)
	ids := map[tracer.ListenerID]bool{}
	e.tally.Each(func(s *ledger.Sock) {
		ids[s.ID] = true
		m := e.marks[s.ID]
		if m == nil || s.New {
			m = &mark{}
			e.marks[s.ID] = m
		}
		v := e.derive(s)
		var d values
		for i := range v {
			if v[i] > m.hwm[i] {
				d[i], m.hwm[i] = v[i]-m.hwm[i], v[i]
			}
		}
		lat := s.Hist
		if lat != nil && lat.Accepts() == 0 && lat.LatencySum == 0 {
			lat = nil // nothing new: no reason to keep a series alive
		}
		if s.HasEndpoint {
			k := keyOf(s.Endpoint)
			// A closed listener's map entry may linger: only activity
			// or presence keeps its series alive.
			if s.Listed || d.total() > 0 || lat != nil {
				se := e.seriesFor(k, now)
				se.pending.add(&d)
				if lat != nil {
					e.addLatency(&se.pendingHist, lat)
				}
			}
			e.attribute(k.netns, &d)
		} else if d.total() > 0 || lat != nil {
			e.other.add(&d)
			if lat != nil {
				e.addLatency(&e.otherHist, lat)
			}
			e.otherUsed = true
		}
	})
	for id := range e.marks {
		if !ids[id] {
			delete(e.marks, id)
		}
	}

	for _, se := range e.series {
		se.live, se.accLen, se.accMax, se.synLen = false, 0, 0, 0
	}
	e.tally.Each(func(s *ledger.Sock) {
		if s.Listed {
			se := e.series[keyOf(s.Endpoint)]
			se.live = true
			se.accLen += uint64(s.Last.AcceptQueueLen)
			se.accMax += uint64(s.Last.AcceptQueueMax)
			se.synLen += uint64(s.Last.SynQueueLen)
		}
	})

	decay := 1.0
	if !e.lastRefresh.IsZero() {
		decay = math.Exp2(-float64(now.Sub(e.lastRefresh)) / float64(e.opts.HalfLife))
	}
	e.lastRefresh = now
	for k, se := range e.series {
		act := se.pending.total() + se.pendingHist.count
		se.score = se.score*decay + float64(act)
		if se.live || act > 0 {
			se.lastActive = now
		}
		if now.Sub(se.lastActive) > e.opts.Expire {
			delete(e.series, k)
		}
	}
	e.forget()
	e.assignSlots(now)
	e.noteSlotted()
	e.nameOwners(now)

	e.otherLive, e.otherGauges = false, gauges{}
	for _, se := range e.series {
		if se.slotted {
			se.own.add(&se.pending)
			se.ownHist.add(&se.pendingHist)
		} else {
			e.other.add(&se.pending)
			e.otherHist.add(&se.pendingHist)
			e.otherUsed = true
			if se.live {
				e.otherLive = true
				e.otherGauges.accLen += se.accLen
				e.otherGauges.accMax += se.accMax
				e.otherGauges.synLen += se.synLen
			}
		}
		se.pending = values{}
		se.pendingHist.reset()
	}
	return nil
}
