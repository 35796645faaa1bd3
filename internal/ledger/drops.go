package ledger

import (
	"fmt"
	"strings"

	"github.com/synq-trace/synq/tracer"
)

// Drops is a listener's share of the kernel's ListenDrops, by reason. A
// reason the hooks cannot see is nil, never 0.
type Drops struct {
	// Total is the listener's ListenDrops; Exact is false where it is
	// approximated (see tracer.ListenDrops).
	Total uint64
	Exact bool
	// SYN dropped, by reason: SYN queue full (TCPReqQFullDrop), accept
	// queue full (ListenOverflows), neither (SynOther: no route for the
	// SYN-ACK, no memory, ...). Nil where the reason is not visible: where
	// the hooks do not see the SYN side and the namespace's own counters
	// do not settle it (Settle). Where the hooks see them, Total is
	// SynQueueFull + AcceptQueueFull + AckOverflow + Other (SynOther is in
	// Other); where they do not, SynSide + AckOverflow + Other, and the
	// three reasons, when settled, add up to SynSide.
	SynQueueFull, AcceptQueueFull, SynOther *uint64
	// SynSide: SYN-side drops, derived as Total minus the ACK-side drops
	// the hooks saw, where the hooks do not see the SYN side (nil where
	// they do).
	SynSide *uint64
	// SettledBy says how the reasons of SynSide were known: "" where they
	// are not (or the hooks see them), else from which of the namespace's
	// counters (Settle).
	SettledBy string
	// AckOverflow: final ACKs dropped, accept queue full (half-open).
	AckOverflow uint64
	// Other: ListenDrops with room in the queues (on the SYN side only
	// where the hooks see it: else in SynSide).
	Other uint64
}

// Breakdown splits c, counted between two snapshots of one listener
// (before, after: sk_drops), into drops by reason, as far as the hooks see.
func Breakdown(info tracer.Info, before, after tracer.Listener, c tracer.Counts) Drops {
	total, exact := tracer.ListenDrops(info, before, after, c)
	return BreakdownOf(info.Caps(), total, exact, c)
}

// BreakdownOf splits a listener's ListenDrops (total, exact: see
// tracer.ListenDrops) and its counts over the same time by reason.
func BreakdownOf(caps tracer.Capabilities, total uint64, exact bool, c tracer.Counts) Drops {
	d := Drops{AckOverflow: c.AckOverflow, Total: total, Exact: exact}
	if caps.SynSide {
		d.SynQueueFull, d.AcceptQueueFull, d.SynOther = ptr(c.DropSynQueue), ptr(c.DropAcceptQueue), ptr(c.DropOther)
		d.Other = c.DropOther + c.AckOther
		return d
	}
	// What ListenDrops counted beyond the ACK side the hooks saw was a SYN.
	d.Other = c.AckOther
	d.SynSide = ptr(d.Total - min(d.Total, c.AckOverflow+c.AckOther))
	return d
}

// NetnsDrops is what one namespace's own counters moved over the time the
// Drops of its listeners cover.
type NetnsDrops struct {
	ListenDrops, ListenOverflows, TCPReqQFullDrop uint64
}

// NetnsDropsOf reads a NetnsDrops from a counter delta (netstat keys); false
// when one of them is missing.
func NetnsDropsOf(delta map[string]int64) (NetnsDrops, bool) {
	var n NetnsDrops
	for _, f := range []struct {
		key string
		v   *uint64
	}{{"TcpExt.ListenDrops", &n.ListenDrops}, {"TcpExt.ListenOverflows", &n.ListenOverflows}, {"TcpExt.TCPReqQFullDrop", &n.TCPReqQFullDrop}} {
		v, ok := delta[f.key]
		if !ok || v < 0 {
			return NetnsDrops{}, false
		}
		*f.v = uint64(v)
	}
	return n, true
}

// What settled the SYN-side reasons (Drops.SettledBy).
const (
	SettledNoOverflow = "the netns's ListenOverflows and TCPReqQFullDrop did not move"
	SettledOnly       = "the only listener that dropped in its netns: the netns's counters are its own"
	SettledOneReason  = "the netns's counters moved for one reason only"
)

// Settle gives the SYN-side drops of a namespace's listeners (ds: every
// listener of the namespace, over one interval) their reasons where the
// hooks cannot see them and the namespace's own counters over the same
// interval settle it. The kernel counts a SYN dropped for a full SYN queue
// in TCPReqQFullDrop, for a full accept queue in ListenOverflows (with the
// final ACKs dropped so, which the hooks see), and every drop in
// ListenDrops. Where neither overflow counter moved, no drop in the
// namespace was a full queue. Otherwise the counters are split among the
// listeners only where they are theirs: the listeners' drops add up to the
// namespace's ListenDrops exactly (not so if a listener closed or went
// unlisted in the interval, another port's dropped, or traffic fell between
// the reads), the hooks see every ACK-side overflow (ackOverflowsSeen:
// tracer.Capabilities.AckOverflow), and one listener dropped on the SYN
// side, or the counters moved for one reason only.
func Settle(n NetnsDrops, ackOverflowsSeen bool, ds []*Drops) {
	for _, d := range ds {
		if d.SynSide == nil {
			return // the hooks see the reasons
		}
	}
	set := func(d *Drops, q, a, o uint64, by string) {
		d.SynQueueFull, d.AcceptQueueFull, d.SynOther = ptr(q), ptr(a), ptr(o)
		if *d.SynSide > 0 {
			d.SettledBy = by
		}
	}
	if n.ListenOverflows == 0 && n.TCPReqQFullDrop == 0 {
		// Whatever listener dropped, in the netns or not listed, no drop
		// there was a full queue.
		for _, d := range ds {
			set(d, 0, 0, *d.SynSide, SettledNoOverflow)
		}
		return
	}
	var total, synSide, ackOvf uint64
	dropping := 0
	var only *Drops
	for _, d := range ds {
		if !d.Exact {
			return
		}
		total += d.Total
		synSide += *d.SynSide
		ackOvf += d.AckOverflow
		if *d.SynSide > 0 {
			dropping++
			only = d
		}
	}
	if dropping == 0 || total != n.ListenDrops || !ackOverflowsSeen || n.ListenOverflows < ackOvf {
		return
	}
	synQ, accQ := n.TCPReqQFullDrop, n.ListenOverflows-ackOvf
	if synQ+accQ > synSide {
		return
	}
	other := synSide - synQ - accQ
	if dropping == 1 {
		for _, d := range ds {
			if d == only {
				set(d, synQ, accQ, other, SettledOnly)
			} else {
				set(d, 0, 0, 0, SettledOnly)
			}
		}
		return
	}
	reasons := 0
	for _, v := range []uint64{synQ, accQ, other} {
		if v > 0 {
			reasons++
		}
	}
	if reasons != 1 {
		return
	}
	for _, d := range ds {
		s := *d.SynSide
		switch {
		case synQ > 0:
			set(d, s, 0, 0, SettledOneReason)
		case accQ > 0:
			set(d, 0, s, 0, SettledOneReason)
		default:
			set(d, 0, 0, s, SettledOneReason)
		}
	}
}

// SynReason names the reason of a listener's SYN-side drops in a few words:
// "" when it had none, "reason not visible on this kernel" when it is not
// known.
func (d Drops) SynReason() string {
	syn := d.SynSide
	if syn == nil {
		v := *d.SynQueueFull + *d.AcceptQueueFull + *d.SynOther
		syn = &v
	}
	if *syn == 0 {
		return ""
	}
	if d.SynQueueFull == nil {
		return ReasonNotVisible
	}
	var parts []string
	for _, r := range []struct {
		v    uint64
		name string
	}{{*d.SynQueueFull, "SYN queue full"}, {*d.AcceptQueueFull, "accept queue full"}, {*d.SynOther, "not a full queue"}} {
		if r.v == 0 {
			continue
		}
		if r.v == *syn {
			return r.name
		}
		parts = append(parts, fmt.Sprintf("%d %s", r.v, r.name))
	}
	return strings.Join(parts, ", ")
}

// ReasonNotVisible: SYN-side drops whose reason neither the hooks nor the
// namespace's counters tell.
const ReasonNotVisible = "reason not visible on this kernel"

func ptr(v uint64) *uint64 { return &v }

// The kernel counters synq reconciles, in the order of the listen path.
const (
	ListenDrops     = "ListenDrops"
	ListenOverflows = "ListenOverflows"
	TCPReqQFullDrop = "TCPReqQFullDrop"
	SyncookiesSent  = "SyncookiesSent"
	PassiveOpens    = "PassiveOpens"
	TCPSynRetrans   = "TCPSynRetrans"
)

// Counter is one kernel counter with what synq counted of it.
type Counter struct {
	Name string // the kernel's name: ListenDrops, PassiveOpens, ...
	Key  string // its netstat.Snapshot key: TcpExt.ListenDrops, ...
	// Activity: a change means listen-path activity in the namespace
	// (TCPSynRetrans also moves for clients).
	Activity bool
	// Synq is what synq counted of it; nil where the hooks cannot see it.
	Synq *uint64
	// Whole: the hooks are placed to see every increment, so anything but
	// Synq == kernel is a gap to explain. Missing names hooks that did not
	// attach and leave it short (then it is not claimed).
	Whole   bool
	Missing string
	// Partial says what part of the counter Synq is when not Whole.
	Partial string
}

// Claimed: every increment is counted (Whole with every hook attached).
func (c Counter) Claimed() bool { return c.Whole && c.Missing == "" }

// Coverage lists the reconciled counters with what synq counted of each: c
// summed over the listeners of a namespace, listenDrops their ListenDrops.
// The one place that says which counter synq can claim on this kernel.
func Coverage(caps tracer.Capabilities, c tracer.Counts, listenDrops uint64) []Counter {
	missing := ""
	if len(caps.SynSideMissing) > 0 {
		missing = "hook " + strings.Join(caps.SynSideMissing, ", ") + " not attached"
	}
	out := []Counter{
		{Name: ListenDrops, Key: "TcpExt.ListenDrops", Activity: true, Synq: ptr(listenDrops), Whole: true},
		{Name: ListenOverflows, Key: "TcpExt.ListenOverflows", Activity: true},
		{Name: TCPReqQFullDrop, Key: "TcpExt.TCPReqQFullDrop", Activity: true},
		{Name: SyncookiesSent, Key: "TcpExt.SyncookiesSent", Activity: true},
		{Name: PassiveOpens, Key: "Tcp.PassiveOpens", Activity: true, Synq: ptr(c.Enqueue),
			Partial: "not claimed: the kernel also counts children that never reach the accept queue"},
		{Name: TCPSynRetrans, Key: "TcpExt.TCPSynRetrans"},
	}
	if caps.SynSide {
		out[0].Missing = missing
		out[1].Synq, out[1].Whole, out[1].Missing = ptr(c.DropAcceptQueue+c.AckOverflow), true, missing
		out[2].Synq, out[2].Whole, out[2].Missing = ptr(c.DropSynQueue), true, missing
		out[3].Synq, out[3].Whole, out[3].Missing = ptr(c.Cookie), true, missing
	} else {
		switch {
		case caps.AckOverflow:
			out[1].Synq, out[1].Partial = ptr(c.AckOverflow), "ACK side only: SYN-side overflows are invisible to tracepoints"
		case caps.CookieAckOverflow:
			out[1].Synq, out[1].Partial = ptr(c.AckOverflow), "cookie ACKs only: SYN side invisible to tracepoints, other ACKs need 6.15+"
		default:
			out[1].Partial = "SYN-side overflows are invisible to tracepoints, ACK-side ones need 6.11+"
		}
		out[2].Partial = "SYN-side drops are invisible to tracepoints"
		out[3].Partial = "cookies are sent on the SYN side, invisible to tracepoints"
	}
	if caps.SynackRetrans {
		out[5].Synq, out[5].Partial = ptr(c.SynackRetrans), "not claimed: the kernel also counts client SYN retransmits"
	} else {
		out[5].Partial = "tcp_retransmit_synack tracepoint not attached"
	}
	return out
}

// CounterNames lists the names of the counters reconciled.
func CounterNames() []string {
	cs := Coverage(tracer.Capabilities{}, tracer.Counts{}, 0)
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Name
	}
	return out
}
