package render

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/synq-trace/synq/internal/aggregate"
	"github.com/synq-trace/synq/internal/doctor"
)

// DoctorReport is what synq doctor prints: the window observed and its
// findings, worst first.
type DoctorReport struct {
	Frame    *aggregate.Frame
	Findings []doctor.Finding
	Netns    map[uint32]*doctor.Netns
}

// DoctorJSON is synq doctor --output json: one object (docs/schema/doctor.json).
type DoctorJSON struct {
	DurationNs      int64               `json:"duration_ns"`
	Tier            string              `json:"tier"`
	Kernel          string              `json:"kernel"`
	Listeners       int                 `json:"listeners"`
	Found           bool                `json:"found"`
	Lost            uint64              `json:"lost"`
	RecursionMisses uint64              `json:"recursion_misses"`
	Netns           []doctorNetnsJSON   `json:"netns"`
	Findings        []doctorFindingJSON `json:"findings"`
	Reconcile       []TopCoverageJSON   `json:"reconcile,omitempty"`
}

type doctorNetnsJSON struct {
	Netns            uint32 `json:"netns"`
	Name             string `json:"name,omitempty"`
	Somaxconn        *int64 `json:"somaxconn"`
	TCPMaxSynBacklog *int64 `json:"tcp_max_syn_backlog"`
	TCPSyncookies    *int64 `json:"tcp_syncookies"`
	TCPMaxTwBuckets  *int64 `json:"tcp_max_tw_buckets"`
}

type doctorFindingJSON struct {
	Kind     string               `json:"kind"`
	Severity string               `json:"severity"`
	Listener doctorListenerJSON   `json:"listener"`
	Title    string               `json:"title"`
	Evidence []doctorEvidenceJSON `json:"evidence"`
	Limit    string               `json:"limit,omitempty"`
	Action   string               `json:"action,omitempty"`
	Inferred string               `json:"inferred,omitempty"`
}

type doctorListenerJSON struct {
	Netns     uint32 `json:"netns"`
	NetnsName string `json:"netns_name,omitempty"`
	Addr      string `json:"addr"`
	Port      uint16 `json:"port"`
	Process   string `json:"process,omitempty"`
	Workload  string `json:"workload,omitempty"`
	// Owners: every process holding the socket, with its workload's
	// structured identity (as top's owners).
	Owners []aggregate.Owner `json:"owners"`
}

type doctorEvidenceJSON struct {
	What    string  `json:"what"`
	Synq    *uint64 `json:"synq"`
	Counter string  `json:"counter,omitempty"`
	Kernel  *int64  `json:"kernel"`
}

// NewDoctorJSON shapes a report for JSON.
func NewDoctorJSON(r *DoctorReport) DoctorJSON {
	f := r.Frame
	j := DoctorJSON{DurationNs: int64(f.Interval), Tier: string(f.Tier), Kernel: f.Kernel, Listeners: len(f.Rows),
		Found: doctor.Found(r.Findings), Lost: f.Lost, RecursionMisses: f.RecursionMisses,
		Netns: []doctorNetnsJSON{}, Findings: []doctorFindingJSON{}}
	for _, n := range sortedNetns(r.Netns) {
		s := n.Sysctls
		j.Netns = append(j.Netns, doctorNetnsJSON{Netns: n.Inode, Name: n.Name, Somaxconn: s.Somaxconn,
			TCPMaxSynBacklog: s.MaxSynBacklog, TCPSyncookies: s.Syncookies, TCPMaxTwBuckets: s.MaxTwBuckets})
	}
	for _, fd := range r.Findings {
		l := fd.Listener
		fj := doctorFindingJSON{Kind: fd.Kind, Severity: fd.Severity.String(), Title: fd.Title, Limit: fd.Limit,
			Action: fd.Action, Inferred: fd.Inferred, Evidence: []doctorEvidenceJSON{},
			Listener: doctorListenerJSON{Netns: l.Netns, NetnsName: l.NetnsName, Addr: l.Addr, Port: l.Port, Process: l.Process, Workload: l.Workload,
				Owners: l.Owners}}
		if fj.Listener.Owners == nil {
			fj.Listener.Owners = []aggregate.Owner{}
		}
		for _, e := range fd.Evidence {
			fj.Evidence = append(fj.Evidence, doctorEvidenceJSON{What: e.What, Synq: e.Synq, Counter: e.Counter, Kernel: e.Kernel})
		}
		j.Findings = append(j.Findings, fj)
	}
	for _, c := range f.Coverage {
		cj := TopCoverageJSON{Counter: c.Counter, Kernel: c.Kernel, Synq: c.Synq, Claimed: c.Claimed, Note: c.Note}
		if c.Synq != nil && c.Kernel > 0 {
			r := float64(*c.Synq) / float64(c.Kernel)
			cj.Ratio = &r
		}
		j.Reconcile = append(j.Reconcile, cj)
	}
	return j
}

func sortedNetns(m map[uint32]*doctor.Netns) []*doctor.Netns {
	out := make([]*doctor.Netns, 0, len(m))
	for _, n := range m {
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b *doctor.Netns) int { return int(a.Inode) - int(b.Inode) })
	return out
}

// WriteDoctor prints the report: findings worst first, each with its
// evidence, limit and action; a healthy listener in one line.
func WriteDoctor(w io.Writer, format Format, r *DoctorReport) error {
	if format == JSON {
		return writeJSONLine(w, NewDoctorJSON(r))
	}
	f := r.Frame
	var b strings.Builder
	n := 0
	for _, fd := range r.Findings {
		if fd.Severity > doctor.OK {
			n++
		}
	}
	fmt.Fprintf(&b, "synq doctor: %s observed on Linux %s (%s tier): %s, %s\n",
		f.Interval.Round(time.Millisecond), f.Kernel, f.Tier, plural(len(f.Rows), "listener"), plural(n, "finding"))
	if f.Lost > 0 || f.RecursionMisses > 0 {
		fmt.Fprintf(&b, "note: %d records lost and %d program runs skipped by the kernel: the counts below may miss them\n", f.Lost, f.RecursionMisses)
	}
	for _, c := range f.Coverage {
		if c.Claimed && c.Synq != nil && *c.Synq != c.Kernel {
			fmt.Fprintf(&b, "note: synq counted %d of the kernel's %d %s since it started: not every drop is attributed to a listener\n", *c.Synq, c.Kernel, c.Counter)
		}
	}
	if len(f.Rows) == 0 {
		b.WriteString("no listener matched: nothing to diagnose\n")
	}
	for _, fd := range r.Findings {
		writeFinding(&b, fd)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeFinding(b *strings.Builder, fd doctor.Finding) {
	l := fd.Listener
	who := []string{"netns " + netnsLabel(l.Netns, l.NetnsName)}
	if l.Process != "" {
		who = append(who, l.Process)
	}
	if l.Workload != "" {
		who = append(who, l.Workload)
	}
	fmt.Fprintf(b, "%-8s  %s:%d (%s): %s\n", strings.ToUpper(fd.Severity.String()), l.Addr, l.Port, strings.Join(who, ", "), fd.Title)
	if fd.Severity == doctor.OK {
		return
	}
	for i, e := range fd.Evidence {
		label := "evidence:"
		if i > 0 {
			label = ""
		}
		fmt.Fprintf(b, "  %-9s %s\n", label, evidenceText(e))
	}
	for _, kv := range [][2]string{{"limit:", fd.Limit}, {"action:", fd.Action}, {"inferred:", fd.Inferred}} {
		if kv[1] != "" {
			fmt.Fprintf(b, "  %-9s %s\n", kv[0], kv[1])
		}
	}
}

func netnsLabel(ino uint32, name string) string {
	if name != "" {
		return fmt.Sprintf("%s (net:[%d])", name, ino)
	}
	return fmt.Sprintf("net:[%d]", ino)
}

// evidenceText: "what: synq N | kernel COUNTER +M over the same window
// (netns)"; a value the hooks cannot see is "not visible", never 0.
func evidenceText(e doctor.Evidence) string {
	s := e.What
	var parts []string
	if e.Synq != nil {
		parts = append(parts, fmt.Sprintf("synq %d", *e.Synq))
	}
	switch {
	case e.Counter != "" && e.Kernel != nil:
		parts = append(parts, fmt.Sprintf("kernel %s %+d (netns, same window)", e.Counter, *e.Kernel))
	case e.Counter != "":
		parts = append(parts, "kernel "+e.Counter+" not read")
	case e.Kernel != nil:
		parts = append(parts, fmt.Sprintf("%d", *e.Kernel))
	}
	if e.Synq == nil && e.Counter != "" {
		parts = append([]string{"synq: not visible on this kernel"}, parts...)
	}
	if len(parts) > 0 {
		s += ": " + strings.Join(parts, " | ")
	}
	return s
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
