package ledger

import (
	"testing"

	"github.com/synq-trace/synq/tracer"
)

// Settle's rules on the tracepoint tier's breakdowns (the kernel tests in
// cmd/synq reproduce them with real drops): a reason is given only where the
// netns's counters leave one answer, else nil.
func TestSettle(t *testing.T) {
	tp := tracer.Capabilities{AckOverflow: true, ListenDropsExact: true}
	bd := func(total, ackOvf uint64) *Drops {
		d := BreakdownOf(tp, total, true, tracer.Counts{AckOverflow: ackOvf})
		return &d
	}
	reasons := func(d *Drops) []any {
		if d.SynQueueFull == nil {
			return nil
		}
		return []any{*d.SynQueueFull, *d.AcceptQueueFull, *d.SynOther}
	}
	for _, c := range []struct {
		name string
		n    NetnsDrops
		ds   []*Drops
		want [][]any // per listener: syn queue full, accept queue full, other; nil = not visible
	}{
		{"no overflow moved: not a full queue, whoever dropped", NetnsDrops{ListenDrops: 99}, []*Drops{bd(10, 0), bd(5, 0)},
			[][]any{{uint64(0), uint64(0), uint64(10)}, {uint64(0), uint64(0), uint64(5)}}},
		{"one listener dropped: the netns's split is its own", NetnsDrops{ListenDrops: 12, ListenOverflows: 7, TCPReqQFullDrop: 3}, []*Drops{bd(12, 2), bd(0, 0)},
			[][]any{{uint64(3), uint64(5), uint64(2)}, {uint64(0), uint64(0), uint64(0)}}},
		{"drops not all the listeners': nothing settled", NetnsDrops{ListenDrops: 13, ListenOverflows: 7, TCPReqQFullDrop: 3}, []*Drops{bd(12, 2), bd(0, 0)},
			[][]any{nil, nil}},
		{"two dropped, one reason: that reason", NetnsDrops{ListenDrops: 9, ListenOverflows: 9}, []*Drops{bd(4, 1), bd(5, 0)},
			[][]any{{uint64(0), uint64(3), uint64(0)}, {uint64(0), uint64(5), uint64(0)}}},
		{"two dropped, two reasons: not visible", NetnsDrops{ListenDrops: 9, ListenOverflows: 5, TCPReqQFullDrop: 4}, []*Drops{bd(4, 0), bd(5, 0)},
			[][]any{nil, nil}},
	} {
		Settle(c.n, true, c.ds)
		for i, d := range c.ds {
			got, want := reasons(d), c.want[i]
			if len(got) != len(want) || (got != nil && (got[0] != want[0] || got[1] != want[1] || got[2] != want[2])) {
				t.Errorf("%s: listener %d: reasons %v, want %v", c.name, i, got, want)
			}
			if got == nil && d.SynReason() != ReasonNotVisible && *d.SynSide > 0 {
				t.Errorf("%s: listener %d: unsettled reason %q", c.name, i, d.SynReason())
			}
		}
	}
}
