package render

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/synq-trace/synq/internal/aggregate"
	"github.com/synq-trace/synq/internal/ledger"
)

// TopText renders a frame as lines: a header, the table, a legend.
func TopText(f *aggregate.Frame, key aggregate.SortKey, interactive bool) []string {
	tp := !f.SynSide()
	listeners := "listeners"
	if len(f.Rows) == 1 {
		listeners = "listener"
	}
	head := fmt.Sprintf("synq top: %s tier, Linux %s; ring buffer %s records/s, lost %d",
		f.Tier, f.Kernel, TopRate(f.Rate(f.RingRecords)), f.Lost)
	if f.RecursionMisses > 0 {
		head += fmt.Sprintf(", %d program runs skipped (recursion; missing from the counts too)", f.RecursionMisses)
	}
	head += fmt.Sprintf("; %d %s; every %s; sorted by %s", len(f.Rows), listeners, f.Interval.Round(10*time.Millisecond), key)
	var unattributed []string
	if f.Coverage != nil {
		var cov string
		cov, unattributed = topCoverage(f.Coverage)
		head += "; " + cov
	}
	if interactive {
		head += "  [q quit, s sort]"
	}
	lines := []string{head}
	if f.UnattributedEnqueues > 0 {
		lines = append(lines, fmt.Sprintf("%d enqueues with no listener known (no sk_data_ready tracepoint before 6.6)", f.UnattributedEnqueues))
	}
	lines = append(lines, "")

	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	reasons := "SYNQ-FULL\tACCQ-FULL"
	if tp {
		reasons = "SYN-DROP*"
	}
	fmt.Fprintf(tw, "NETNS\tLISTENER\tSYN/s\tACC/s\tDROP/s\t%s\tACK-OVF\tOTHER\tCOOKIE/s\tACCEPT-Q\tSYN-Q\tLATENCY p50/p99/max\tOWNER\tWORKLOAD", reasons)
	if tp {
		fmt.Fprint(tw, "\tSYN-DROP WHY*")
	}
	fmt.Fprintln(tw)
	accepting, grouped := false, false
	for i := range f.Rows {
		r := &f.Rows[i]
		ns := netnsCell(uint64(r.Netns), r.NetnsName)
		var syn, cookies, why string
		if tp {
			syn, cookies = "-", "-"
			why = TopRate(f.Rate(*r.SynDerived))
		} else {
			syn, cookies = TopRate(f.Rate(*r.Syn)), TopRate(f.Rate(*r.Cookies))
			why = TopRate(f.Rate(*r.SynQueueFull)) + "\t" + TopRate(f.Rate(*r.AcceptQueueFull))
		}
		drops := TopRate(f.Rate(r.Drops))
		if !r.DropsExact {
			drops += "~"
		}
		lat := "-"
		if r.Latency.Count > 0 {
			lat = Duration(r.Latency.P50) + "/" + Duration(r.Latency.P99) + "/" + Duration(r.Latency.Max)
		}
		own, cg := ownerLabel(r.Owners)
		if cg == "" {
			cg = "-"
		}
		accepting = accepting || len(r.Owners) > 0 && r.Owners[0].Accepting
		grouped = grouped || r.Member > 0
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s", ns, aggregate.MemberLabel(r.Endpoint, r.Member), syn,
			TopRate(f.Rate(r.Accepts)), drops, why, TopRate(f.Rate(r.AckOverflow)), TopRate(f.Rate(r.Other)), cookies,
			topQueueText(r.AcceptQueue), topQueueText(r.SynQueue), lat, own, cg)
		if tp {
			reason := r.SynReason
			if reason == "" {
				reason = "-"
			} else if r.SettledBy != "" {
				reason += " (netns counters)"
			}
			fmt.Fprint(tw, "\t"+reason)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	lines = append(lines, strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")...)
	lines = append(lines, "")
	if tp {
		lines = append(lines, "* SYN-side drops, derived per listener: ListenDrops from sk_drops − ACK-OVF − OTHER; "+
			"tracepoints cannot see a dropped SYN, so no SYN/s, cookies or reason of their own: SYN-DROP WHY comes from the netns's "+
			"counters where they settle it (ListenOverflows and TCPReqQFullDrop did not move, or one listener dropped), "+
			"else \""+ledger.ReasonNotVisible+"\".")
	} else {
		lines = append(lines, "drops/s by reason: SYNQ-FULL SYN dropped, SYN queue full; ACCQ-FULL SYN dropped, accept queue full; "+
			"ACK-OVF final ACK dropped, accept queue full (half-open); OTHER ListenDrops with room in the queues.")
	}
	lines = append(lines, "queues: now/peak/max over the interval; ~ = drops approximated by sk_drops (kernel before 6.11).")
	if grouped {
		lines = append(lines, "LISTENER #k: the k-th socket (by inode) of an SO_REUSEPORT group on that address and port.")
	}
	if accepting {
		lines = append(lines, "OWNER *: the process seen accepting from this socket; +N more hold it.")
	}
	if len(unattributed) > 0 {
		lines = append(lines, "† moved in the kernel, not attributable to listeners by this kernel's hooks: "+strings.Join(unattributed, "; ")+".")
	}
	return lines
}

func topQueueText(q aggregate.Queue) string {
	return fmt.Sprintf("%d/%d/%d", q.Now, q.Peak, q.Max)
}

// ownerLabel is "pid/comm +N" and the first owner's workload.
func ownerLabel(owners []aggregate.Owner) (string, string) {
	if len(owners) == 0 {
		return "-", ""
	}
	comm := owners[0].Comm
	if owners[0].Accepting {
		comm += "*"
	}
	return ownerCell(owners[0].PID, comm, len(owners)-1), workload(owners[0])
}

// workload is the most useful name of an owner's workload: the pod and
// container, the container, the unit (identity.Display), else its cgroup
// path; "" for a process in the root cgroup.
func workload(o aggregate.Owner) string {
	if s := o.Display(); s != "" {
		return s
	}
	if o.Cgroup == "/" {
		return ""
	}
	return o.Cgroup
}

// TopRate prints a per-second rate: below 100 with one decimal unless it
// rounds to a whole number (intervals are never exactly 1 s: 40.98 is "41").
func TopRate(v float64) string {
	if v < 100 {
		return strings.TrimSuffix(strconv.FormatFloat(v, 'f', 1, 64), ".0")
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

// topCoverage is the header's reconciliation: "reconcile ListenDrops
// 12/12 (100%), SyncookiesSent 19961†": every counter that moved, the
// claimed ones as synq/kernel, the others with synq's partial count or a †
// where the hooks cannot attribute them (their notes are returned for the
// footnote). Never silence where the kernel moved a counter.
func topCoverage(cov []aggregate.Coverage) (string, []string) {
	var parts, unattributed []string
	for _, c := range cov {
		if c.Kernel == 0 && (c.Synq == nil || *c.Synq == 0) {
			continue
		}
		var p string
		switch {
		case c.Synq == nil:
			p = fmt.Sprintf("%s %d†", c.Counter, c.Kernel)
			unattributed = append(unattributed, c.Counter+": "+c.Note)
		case !c.Claimed:
			p = fmt.Sprintf("%s %d (synq %d, not claimed)", c.Counter, c.Kernel, *c.Synq)
		default:
			p = fmt.Sprintf("%s %d/%d", c.Counter, *c.Synq, c.Kernel)
			if c.Kernel > 0 {
				p += fmt.Sprintf(" (%.0f%%)", 100*float64(*c.Synq)/float64(c.Kernel))
			}
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		return "reconcile: no listen-path counter moved", nil
	}
	return "reconcile " + strings.Join(parts, ", "), unattributed
}
