package ledger

import (
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
	// queue full (ListenOverflows). Nil where the SYN side is invisible.
	SynQueueFull, AcceptQueueFull *uint64
	// SynSide: SYN-side drops of either reason, derived as Total minus the
	// ACK-side drops the hooks saw, where the reasons are invisible. Nil
	// where the reasons are seen.
	SynSide *uint64
	// AckOverflow: final ACKs dropped, accept queue full (half-open).
	AckOverflow uint64
	// Other: ListenDrops with room in the queues (on the SYN side only
	// where the hooks see it).
	Other uint64
}

// Breakdown splits c, counted between two snapshots of one listener
// (before, after: sk_drops), into drops by reason, as far as the hooks see.
func Breakdown(info tracer.Info, before, after tracer.Listener, c tracer.Counts) Drops {
	d := Drops{AckOverflow: c.AckOverflow}
	d.Total, d.Exact = tracer.ListenDrops(info, before, after, c)
	if info.Caps().SynSide {
		d.SynQueueFull, d.AcceptQueueFull = ptr(c.DropSynQueue), ptr(c.DropAcceptQueue)
		d.Other = c.DropOther + c.AckOther
		return d
	}
	// What ListenDrops counted beyond the ACK side the hooks saw was a SYN.
	d.Other = c.AckOther
	d.SynSide = ptr(d.Total - min(d.Total, c.AckOverflow+c.AckOther))
	return d
}

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
