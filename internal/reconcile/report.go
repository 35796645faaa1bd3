package reconcile

import (
	"fmt"
	"github.com/synq-trace/synq/internal/aggregate"
	"sort"
	"strings"
	"time"

	"github.com/synq-trace/synq/internal/ledger"
	"github.com/synq-trace/synq/internal/netstat"
	"github.com/synq-trace/synq/tracer"
)

// Report is one reconciliation: per namespace, each counter's kernel delta
// next to synq's count since the baseline.
type Report struct {
	Time    time.Time
	Elapsed time.Duration // since the baseline
	Final   bool          // printed on exit
	Tier    tracer.Tier
	Kernel  string
	Port    uint16 // the tracer's port filter, 0 = none
	Netns   []NetnsReport
	// Idle namespaces: reconciled, but neither the kernel nor synq counted
	// anything there; left out of Netns.
	Idle int
	// Unattributed: counts of listeners synq could not place in any
	// namespace (every netns traced; see Reconciler.Observe).
	Unattributed *tracer.Counts
	// The tracer's loss counters since it started. Lost and BadRecords
	// concern the event stream only; RecursionMisses are program runs the
	// kernel skipped, so they can also be missing from the counts.
	Lost, RecursionMisses, BadRecords uint64
}

// NetnsReport reconciles one network namespace.
type NetnsReport struct {
	Inode uint64
	Name  string
	Host  bool
	Err   string // why the kernel's counters could not be read
	Rows  []Row
	// Listeners with anything counted, by address and port.
	Listeners []ListenerReport
}

// Row is one counter.
type Row struct {
	Counter string // the kernel's name: ListenDrops, PassiveOpens, ...
	// Kernel is the counter's delta in the namespace; nil when it could
	// not be read. Synq is what synq counted; nil when this tier cannot.
	Kernel, Synq *uint64
	// Coverage is 100·Synq/Kernel; nil when either is unknown or Kernel
	// is 0.
	Coverage *float64
	// Claimed: the tier counts every increment of this counter, so
	// anything but Synq == Kernel is a bug or an explained gap (Note).
	Claimed bool
	Note    string
}

// Exact says Synq equals Kernel (both known).
func (r Row) Exact() bool { return r.Kernel != nil && r.Synq != nil && *r.Kernel == *r.Synq }

// ListenerReport is what synq counted for one listener since the baseline.
type ListenerReport struct {
	ID tracer.ListenerID
	tracer.Endpoint
	Inode            uint64 // socket inode as last listed; 0 when never listed
	Counts           tracer.Counts
	ListenDrops      uint64
	ListenDropsExact bool
	// Drops: ListenDrops by reason (ledger.BreakdownOf), the SYN-side
	// reasons the hooks cannot see settled from the namespace's counters
	// where they can be (ledger.Settle).
	Drops ledger.Drops
	// Queues as last seen; QueueKnown is false for a listener never seen
	// in a listing (it lived between two samples).
	QueueKnown                                  bool
	AcceptQueueLen, AcceptQueueMax, SynQueueLen uint32
	Closed                                      bool // gone since the baseline
	// Owners hold the socket, with their workloads, when the caller
	// named them (nil: not looked up; empty: none found, e.g. closed).
	Owners []aggregate.Owner
}

// Row returns the row of a counter, or false.
func (n NetnsReport) Row(counter string) (Row, bool) {
	for _, r := range n.Rows {
		if r.Counter == counter {
			return r, true
		}
	}
	return Row{}, false
}

// Namespace returns the report of a namespace, or false.
func (r *Report) Namespace(inode uint64) (NetnsReport, bool) {
	for _, n := range r.Netns {
		if n.Inode == inode {
			return n, true
		}
	}
	return NetnsReport{}, false
}

// The counters reconciled, in the order of the listen path.
const (
	ListenDrops     = ledger.ListenDrops
	ListenOverflows = ledger.ListenOverflows
	TCPReqQFullDrop = ledger.TCPReqQFullDrop
	SyncookiesSent  = ledger.SyncookiesSent
	PassiveOpens    = ledger.PassiveOpens
	TCPSynRetrans   = ledger.TCPSynRetrans
)

// Counters lists the names of the counters reconciled.
func Counters() []string { return ledger.CounterNames() }

// counters are the reconciled counters' names and netstat keys.
var counters = func() (out []struct{ name, key string }) {
	for _, c := range ledger.Coverage(tracer.Capabilities{}, tracer.Counts{}, 0) {
		out = append(out, struct{ name, key string }{c.Name, c.Key})
	}
	return out
}()

// rows reconciles one namespace. delta is nil when its counters could not be
// read; missed: some listing of it failed, so short-lived listeners may be
// missing.
func (r *Reconciler) rows(delta netstat.Snapshot, a *agg, missed bool, recursionMisses uint64) []Row {
	caps := r.info.Caps()
	u := func(v uint64) *uint64 { return &v }
	cov := ledger.Coverage(caps, a.counts, a.drops)
	rows := make([]Row, 0, len(cov))
	for _, ctr := range cov {
		row := Row{Counter: ctr.Name, Synq: ctr.Synq, Claimed: ctr.Claimed(), Note: ctr.Partial}
		if ctr.Whole {
			row.Note = ctr.Missing
		}
		if delta != nil {
			if v, ok := delta[ctr.Key]; ok && v >= 0 {
				row.Kernel = u(uint64(v))
			}
		}
		if ctr.Name == ListenDrops && !caps.SynSide {
			// Derived from sk_drops: exact only where every listener's
			// sk_drops are known.
			row.Claimed = false
			switch {
			case !caps.ListenDropsExact:
				row.Note = "approximated by sk_drops: exact needs kfree_skb's rx_sk (6.11+) and kallsyms"
			case a.unlisted > 0:
				row.Note = fmt.Sprintf("%d listener(s) never listed: their sk_drops are unknown", a.unlisted)
			case !a.exact:
				row.Note = "a listener's sk_drops were read before its last receive drops (closed between samples)"
			case missed:
				row.Claimed = true
				row.Note = "a listing of this netns failed: drops of listeners that lived only then are missing"
			default:
				row.Claimed = true
			}
		}
		if r.cfg.Port != 0 && row.Claimed {
			row.Claimed = false
			row.Note = fmt.Sprintf("--port %d: synq traces one port, the kernel counts the whole netns", r.cfg.Port)
		}
		if row.Kernel != nil && row.Synq != nil && *row.Kernel > 0 {
			cov := 100 * float64(*row.Synq) / float64(*row.Kernel)
			row.Coverage = &cov
		}
		if row.Claimed && row.Kernel != nil && row.Synq != nil && *row.Synq != *row.Kernel {
			row.Note = joinNote(row.Note, r.gap(*row.Kernel, *row.Synq, recursionMisses))
		}
		rows = append(rows, row)
	}
	return rows
}

// gap names what can make a claimed counter differ.
func (r *Reconciler) gap(kernel, synq, recursionMisses uint64) string {
	var why []string
	if recursionMisses > 0 && synq < kernel {
		why = append(why, fmt.Sprintf("%d program runs the kernel skipped (recursion)", recursionMisses))
	}
	if r.cfg.Traced == nil {
		why = append(why, "listeners not placed in a netns")
	}
	if !r.info.Caps().SynSide {
		// ListenDrops from sk_drops: a listener's last drops are unseen
		// if it closed between two listings.
		why = append(why, "listeners that opened and closed between two samples")
	}
	why = append(why, "traffic between the reads of the kernel's and synq's counters")
	return fmt.Sprintf("off by %+d: %s", int64(synq)-int64(kernel), strings.Join(why, ", or "))
}

// settle gives the listeners' SYN-side drops the reasons the namespace's
// counters delta settle (ledger.Settle); nothing where they were not read.
func settle(ls []ListenerReport, delta netstat.Snapshot, caps tracer.Capabilities) {
	n, ok := ledger.NetnsDropsOf(delta)
	if !ok || delta == nil {
		return
	}
	ds := make([]*ledger.Drops, len(ls))
	for i := range ls {
		ds[i] = &ls[i].Drops
	}
	ledger.Settle(n, caps.AckOverflow, ds)
}

func joinNote(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

func sortListeners(ls []ListenerReport) {
	sort.Slice(ls, func(i, j int) bool {
		a, b := ls[i], ls[j]
		if a.Port != b.Port {
			return a.Port < b.Port
		}
		if c := a.Addr.Compare(b.Addr); c != 0 {
			return c < 0
		}
		return a.ID < b.ID
	})
}

// Moved sums each counter over the namespaces of the report where the
// kernel's side is known: the claimed counters always, the others where the
// kernel moved them, with what synq counted of them (nil where the hooks
// cannot attribute it to listeners) and why it is not claimed. A header
// (synq top) shows every listen-path counter that moved, never silence.
func (r *Report) Moved() []Row {
	var out []Row
	for _, name := range Counters() {
		var k, s uint64
		seen, claimed, attributed := false, true, true
		note := ""
		for _, n := range r.Netns {
			row, ok := n.Row(name)
			if !ok || row.Kernel == nil {
				continue
			}
			seen = true
			k += *row.Kernel
			if row.Synq == nil {
				attributed = false
			} else {
				s += *row.Synq
			}
			if !row.Claimed {
				claimed = false
				if note == "" {
					note = row.Note
				}
			}
		}
		if !seen || (!claimed && k == 0) {
			continue
		}
		row := Row{Counter: name, Kernel: &k, Claimed: claimed, Note: note}
		if claimed {
			row.Note = ""
		}
		if attributed {
			row.Synq = &s
			if k > 0 {
				pct := 100 * float64(s) / float64(k)
				row.Coverage = &pct
			}
		}
		out = append(out, row)
	}
	return out
}
