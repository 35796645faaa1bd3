package exporter

import (
	"sort"
	"time"
)

// forget drops the folded listeners idle the longest when more are
// remembered than MaxTracked. Their counts already went to "other": only
// their ranking is lost.
func (e *Exporter) forget() {
	var idle []*series
	for _, se := range e.series {
		if !se.slotted && !se.live && se.pending.total() == 0 && se.pendingHist.count == 0 {
			idle = append(idle, se)
		}
	}
	excess := len(e.series) - e.opts.MaxListeners - e.opts.MaxTracked
	if excess <= 0 {
		return
	}
	sort.Slice(idle, func(i, j int) bool { return idle[i].lastActive.Before(idle[j].lastActive) })
	for _, se := range idle[:min(excess, len(idle))] {
		delete(e.series, se.key)
	}
}

// assignSlots gives free slots to the busiest folded listeners, and lets a
// folded listener take the slot of a much quieter one that has held it for
// at least Hold: rankings that flap would move series in and out of "other"
// at every scrape.
func (e *Exporter) assignSlots(now time.Time) {
	var slotted, folded []*series
	for _, se := range e.series {
		if se.slotted {
			slotted = append(slotted, se)
		} else {
			folded = append(folded, se)
		}
	}
	sort.Slice(folded, func(i, j int) bool {
		if folded[i].score != folded[j].score {
			return folded[i].score > folded[j].score
		}
		return folded[i].key.less(folded[j].key)
	})
	for len(slotted) < e.opts.MaxListeners && len(folded) > 0 {
		se := folded[0]
		folded = folded[1:]
		se.slotted, se.since = true, now
		slotted = append(slotted, se)
	}
	var weak []*series
	for _, se := range slotted {
		if now.Sub(se.since) >= e.opts.Hold {
			weak = append(weak, se)
		}
	}
	sort.Slice(weak, func(i, j int) bool {
		if weak[i].score != weak[j].score {
			return weak[i].score < weak[j].score
		}
		return weak[j].key.less(weak[i].key)
	})
	for i, se := range folded {
		if i >= len(weak) || se.score <= 2*weak[i].score+1 {
			break
		}
		weak[i].slotted = false
		se.slotted, se.since = true, now
	}
}
