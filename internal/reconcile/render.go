package reconcile

import (
	"encoding/json"
	"fmt"
	"github.com/synq-trace/synq/internal/aggregate"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/synq-trace/synq/internal/ledger"
	"github.com/synq-trace/synq/tracer"
)

// WriteText prints the report as one table per namespace.
//
//	COUNTER          KERNEL  SYNQ  COVERAGE  NOTE
//	ListenDrops      1234    1234  100%
//
// Coverage in parentheses belongs to a counter the tier does not claim to
// count in full; "-" is a counter this tier cannot see at all.
func WriteText(w io.Writer, rep *Report) error {
	var b strings.Builder
	when := "after " + rep.Elapsed.Round(100_000_000).String()
	if rep.Final {
		when = "on exit, " + when
	}
	fmt.Fprintf(&b, "synq: reconcile %s (%s tier): kernel counter delta vs synq's count, per netns\n", when, rep.Tier)
	for _, n := range rep.Netns {
		b.WriteString(netnsTitle(n))
		if n.Err != "" {
			b.WriteString(": " + n.Err)
		}
		b.WriteByte('\n')
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  COUNTER\tKERNEL\tSYNQ\tCOVERAGE\tNOTE")
		for _, r := range n.Rows {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", r.Counter, count(r.Kernel, "?"), count(r.Synq, "-"), coverage(r), r.Note)
		}
		tw.Flush()
		writeListeners(&b, n.Listeners, "  ")
	}
	text := b.String()
	b.Reset()
	for _, line := range strings.SplitAfter(text, "\n") {
		b.WriteString(strings.TrimRight(line, " \n"))
		if strings.HasSuffix(line, "\n") {
			b.WriteByte('\n')
		}
	}
	if u := rep.Unattributed; u != nil {
		fmt.Fprintf(&b, "not placed in any netns (listeners that closed between samples with their events lost or filtered out; enqueues whose listener the tracepoint tier cannot see before 6.6): %s\n", countsText(*u))
	}
	fmt.Fprintf(&b, "events: lost %d, recursion misses %d, undecodable %d (the counts above are kept in the kernel: lost events do not change them",
		rep.Lost, rep.RecursionMisses, rep.BadRecords)
	if rep.RecursionMisses > 0 {
		b.WriteString("; skipped runs do")
	}
	b.WriteString(")")
	if rep.Idle > 0 {
		fmt.Fprintf(&b, "; %d idle netns not shown", rep.Idle)
	}
	b.WriteByte('\n')
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteListeners prints the per-listener table of a namespace (synq demo).
func WriteListeners(w io.Writer, ls []ListenerReport) error {
	var b strings.Builder
	writeListeners(&b, ls, "")
	var out strings.Builder
	for _, line := range strings.SplitAfter(b.String(), "\n") {
		out.WriteString(strings.TrimRight(line, " \n"))
		if strings.HasSuffix(line, "\n") {
			out.WriteByte('\n')
		}
	}
	_, err := io.WriteString(w, out.String())
	return err
}

// writeListeners is the per-listener table of a namespace: which listener
// dropped, and why as far as this kernel tells.
func writeListeners(b *strings.Builder, ls []ListenerReport, indent string) {
	if len(ls) == 0 {
		return
	}
	owned := false
	for _, l := range ls {
		owned = owned || l.Owners != nil
	}
	tw := tabwriter.NewWriter(b, 0, 4, 2, ' ', 0)
	head := indent + "LISTENER\tENQUEUED\tACCEPTED\tLISTEN-DROPS\tSYN-DROPS\tACK-OVERFLOW\tACK-OTHER\tSYNACK-RETRANS\tACCEPT-Q NOW\tSYN-DROP WHY"
	if owned {
		head += "\tOWNER"
	}
	fmt.Fprintln(tw, head)
	for _, l := range ls {
		name, queue := l.Endpoint.String(), "-"
		if l.ID == 0 {
			name = "(listener unknown)"
		}
		if l.QueueKnown && !l.Closed {
			queue = fmt.Sprintf("%d/%d", l.AcceptQueueLen, l.AcceptQueueMax)
		} else if l.Closed {
			queue = "closed"
		}
		drops := fmt.Sprint(l.ListenDrops)
		if !l.ListenDropsExact {
			drops = "~" + drops
		}
		d := l.Drops
		var syn uint64
		if d.SynSide != nil {
			syn = *d.SynSide
		} else {
			syn = *d.SynQueueFull + *d.AcceptQueueFull + *d.SynOther
		}
		why := d.SynReason()
		if d.SettledBy != "" {
			why += " (netns counters)"
		}
		fmt.Fprintf(tw, indent+"%s\t%d\t%d\t%s\t%d\t%d\t%d\t%d\t%s\t%s", name, l.Counts.Enqueue, l.Counts.Accept, drops, syn,
			d.AckOverflow, l.Counts.AckOther, l.Counts.SynackRetrans, queue, why)
		if owned {
			fmt.Fprint(tw, "\t"+ownerName(l.Owners))
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

// ownerName is the most useful name of a listener's owner: its workload
// (pod, container, unit), else pid/comm ("+N" more holders), else "-".
func ownerName(owners []aggregate.Owner) string {
	if len(owners) == 0 {
		return "-"
	}
	s := owners[0].Display()
	if s == "" {
		s = fmt.Sprintf("%d/%s", owners[0].PID, owners[0].Comm)
	}
	if len(owners) > 1 {
		s += fmt.Sprintf(" +%d", len(owners)-1)
	}
	return s
}

func netnsTitle(n NetnsReport) string {
	s := fmt.Sprintf("netns net:[%d]", n.Inode)
	if n.Name != "" {
		s = fmt.Sprintf("netns %s (net:[%d])", n.Name, n.Inode)
	}
	if n.Host {
		s += " (host)"
	}
	return s
}

func count(v *uint64, unknown string) string {
	if v == nil {
		return unknown
	}
	return strconv.FormatUint(*v, 10)
}

func coverage(r Row) string {
	if r.Coverage == nil {
		if r.Synq == nil {
			return "n/a"
		}
		return "-"
	}
	s := pct(*r.Coverage, r.Exact())
	if !r.Claimed {
		s = "(" + s + ")"
	}
	return s
}

// pct prints a percentage with one decimal, never rounding an inexact value
// to 100%.
func pct(v float64, exact bool) string {
	if exact {
		return "100%"
	}
	s := strconv.FormatFloat(v, 'f', 1, 64)
	if s == "100.0" {
		if v < 100 {
			s = "99.9"
		} else {
			s = "100.1"
		}
	}
	return strings.TrimSuffix(s, ".0") + "%"
}

func countsText(c tracer.Counts) string {
	var parts []string
	for _, f := range []struct {
		name string
		v    uint64
	}{
		{"syn", c.Syn}, {"syn-drop", c.SynDrops()}, {"cookie", c.Cookie}, {"synack-retrans", c.SynackRetrans},
		{"enqueue", c.Enqueue}, {"ack-overflow", c.AckOverflow}, {"ack-other", c.AckOther}, {"accept", c.Accept},
	} {
		if f.v > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", f.name, f.v))
		}
	}
	return strings.Join(parts, " ")
}

// JSON shapes: snake_case, like the event lines.

type reportJSON struct {
	TimeNs       int64       `json:"time_ns"`
	ElapsedNs    int64       `json:"elapsed_ns"`
	Final        bool        `json:"final"`
	Tier         string      `json:"tier"`
	Kernel       string      `json:"kernel"`
	Port         uint16      `json:"port,omitempty"`
	Netns        []netnsJSON `json:"netns"`
	IdleNetns    int         `json:"idle_netns"`
	Unattributed *countsJSON `json:"unattributed,omitempty"`
	Lost         uint64      `json:"lost"`
	Recursion    uint64      `json:"recursion_misses"`
	Undecodable  uint64      `json:"undecodable"`
}

type netnsJSON struct {
	Netns     uint64         `json:"netns"`
	NetnsName string         `json:"netns_name,omitempty"`
	Host      bool           `json:"host,omitempty"`
	Error     string         `json:"error,omitempty"`
	Counters  []rowJSON      `json:"counters"`
	Listeners []listenerJSON `json:"listeners"`
}

type rowJSON struct {
	Counter       string   `json:"counter"`
	Kernel        *uint64  `json:"kernel"`
	Synq          *uint64  `json:"synq"`
	CoverageRatio *float64 `json:"coverage_ratio"` // synq/kernel, 0..1 (text prints it as %)
	Claimed       bool     `json:"claimed"`
	Note          string   `json:"note,omitempty"`
}

type countsJSON struct {
	Syn             uint64 `json:"syn"`
	DropSynQueue    uint64 `json:"syn_drop_syn_queue_full"`
	DropAcceptQueue uint64 `json:"syn_drop_accept_queue_full"`
	DropOther       uint64 `json:"syn_drop_other"`
	Cookies         uint64 `json:"cookies"`
	SynackRetrans   uint64 `json:"synack_retrans"`
	Enqueues        uint64 `json:"enqueues"`
	AckOverflow     uint64 `json:"ack_overflow"`
	AckOther        uint64 `json:"ack_other"`
	Accepts         uint64 `json:"accepts"`
}

type listenerJSON struct {
	Addr  string `json:"addr"`
	Port  uint16 `json:"port"`
	Inode uint64 `json:"inode,omitempty"` // 0: never listed (lived between two samples)
	countsJSON
	ListenDrops      uint64            `json:"listen_drops"`
	ListenDropsExact bool              `json:"listen_drops_exact"`
	DropsByReason    dropsJSON         `json:"drops_by_reason"`
	AcceptQueueLen   *uint32           `json:"accept_queue_len,omitempty"`
	AcceptQueueMax   *uint32           `json:"accept_queue_max,omitempty"`
	SynQueueLen      *uint32           `json:"syn_queue_len,omitempty"`
	Closed           bool              `json:"closed,omitempty"`
	Owners           []aggregate.Owner `json:"owners,omitempty"`
}

// dropsJSON is listen_drops by reason, as synq top's drops_by_reason: null
// where the reason is not visible on this kernel.
type dropsJSON struct {
	SynQueueFull    *uint64 `json:"syn_queue_full"`
	AcceptQueueFull *uint64 `json:"accept_queue_full"`
	SynOther        *uint64 `json:"syn_other"`
	SynDerived      *uint64 `json:"syn_derived"`
	SynSettledBy    string  `json:"syn_settled_by,omitempty"`
	AckOverflow     uint64  `json:"ack_overflow"`
	Other           uint64  `json:"other"`
}

func newDropsJSON(d ledger.Drops) dropsJSON {
	return dropsJSON{SynQueueFull: d.SynQueueFull, AcceptQueueFull: d.AcceptQueueFull, SynOther: d.SynOther,
		SynDerived: d.SynSide, SynSettledBy: d.SettledBy, AckOverflow: d.AckOverflow, Other: d.Other}
}

func newCountsJSON(c tracer.Counts) countsJSON {
	return countsJSON{
		Syn: c.Syn, DropSynQueue: c.DropSynQueue, DropAcceptQueue: c.DropAcceptQueue, DropOther: c.DropOther,
		Cookies: c.Cookie, SynackRetrans: c.SynackRetrans, Enqueues: c.Enqueue, AckOverflow: c.AckOverflow,
		AckOther: c.AckOther, Accepts: c.Accept,
	}
}

// MarshalJSON gives the report's JSON shape.
func (rep *Report) MarshalJSON() ([]byte, error) {
	j := reportJSON{
		TimeNs: rep.Time.UnixNano(), ElapsedNs: rep.Elapsed.Nanoseconds(), Final: rep.Final,
		Tier: string(rep.Tier), Kernel: rep.Kernel, Port: rep.Port, Netns: []netnsJSON{}, IdleNetns: rep.Idle,
		Lost: rep.Lost, Recursion: rep.RecursionMisses, Undecodable: rep.BadRecords,
	}
	if rep.Unattributed != nil {
		u := newCountsJSON(*rep.Unattributed)
		j.Unattributed = &u
	}
	for _, n := range rep.Netns {
		nj := netnsJSON{Netns: n.Inode, NetnsName: n.Name, Host: n.Host, Error: n.Err,
			Counters: []rowJSON{}, Listeners: []listenerJSON{}}
		for _, r := range n.Rows {
			rj := rowJSON{r.Counter, r.Kernel, r.Synq, nil, r.Claimed, r.Note}
			if r.Coverage != nil {
				ratio := *r.Coverage / 100
				rj.CoverageRatio = &ratio
			}
			nj.Counters = append(nj.Counters, rj)
		}
		for _, l := range n.Listeners {
			lj := listenerJSON{Addr: l.Addr.String(), Port: l.Port, Inode: l.Inode, countsJSON: newCountsJSON(l.Counts),
				ListenDrops: l.ListenDrops, ListenDropsExact: l.ListenDropsExact, DropsByReason: newDropsJSON(l.Drops), Closed: l.Closed, Owners: l.Owners}
			if l.QueueKnown {
				lj.AcceptQueueLen, lj.AcceptQueueMax, lj.SynQueueLen = &l.AcceptQueueLen, &l.AcceptQueueMax, &l.SynQueueLen
			}
			nj.Listeners = append(nj.Listeners, lj)
		}
		j.Netns = append(j.Netns, nj)
	}
	return json.Marshal(j)
}

// WriteJSON prints {"reconcile": REPORT} on one line.
func WriteJSON(w io.Writer, rep *Report) error {
	b, err := json.Marshal(struct {
		Reconcile *Report `json:"reconcile"`
	}{rep})
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
