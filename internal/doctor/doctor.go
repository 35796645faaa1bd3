// Package doctor turns what synq observed of each listener over a window
// (the per-listener counts top shows, the namespace's own counters over the
// same window, its sysctls, socket states and the owning processes) into
// findings: the limit that binds, the evidence next to the kernel's own
// counters, and one action. Its functions are pure: internal/command reads
// the kernel and /proc, internal/render prints.
package doctor

import (
	"cmp"
	"slices"

	"github.com/synq-trace/synq/internal/aggregate"
	"github.com/synq-trace/synq/internal/sockstate"
)

// Sysctls are a namespace's listen-path settings, read inside it; nil where
// one could not be read.
type Sysctls struct {
	Somaxconn     *int64 // net.core.somaxconn: caps every listen() backlog
	MaxSynBacklog *int64 // net.ipv4.tcp_max_syn_backlog
	Syncookies    *int64 // net.ipv4.tcp_syncookies: 0 off, 1 on overflow, 2 always
	MaxTwBuckets  *int64 // net.ipv4.tcp_max_tw_buckets
}

// Netns is what was read of one network namespace.
type Netns struct {
	Inode   uint32
	Name    string
	Sysctls Sysctls
	// Delta: the namespace's /proc/net counters (netstat keys such as
	// "TcpExt.ListenOverflows") over the window; nil when not read.
	Delta map[string]int64
	// States: its TCP sockets by state and local port at the end of the
	// window; nil when they could not be counted.
	States *sockstate.Counts
}

// Proc is what /proc said of a process holding a listener, at the end of
// the window.
type Proc struct {
	PID     int
	Comm    string
	State   string // /proc/PID/stat: R, S, D, T, t, Z, ...
	Wchan   string // where it sleeps in the kernel ("" when running or unknown)
	Exe     string // /proc/PID/exe
	Cmdline []string
	Go      bool // the executable carries Go build information
}

// Input is everything one diagnosis looks at.
type Input struct {
	Frame *aggregate.Frame // the window: one top refresh over the whole duration
	Netns map[uint32]*Netns
	Procs map[int]*Proc
	// Thresholds of the socket-state findings (sockstate.DefaultThresholds).
	States sockstate.Thresholds
}

// Severity orders findings: worst first.
type Severity int

const (
	OK       Severity = iota // a healthy listener
	Notice                   // worth knowing, nothing lost
	Warning                  // connections suffer or will
	Critical                 // connections are being lost
)

func (s Severity) String() string {
	return [...]string{"ok", "notice", "warning", "critical"}[s]
}

// Kinds of finding.
const (
	KindNotAccepting = "not-accepting"  // the application does not accept
	KindAppBacklog   = "app-backlog"    // listen() backlog < somaxconn, overflowing
	KindSomaxconn    = "somaxconn"      // backlog capped by somaxconn, overflowing
	KindSynQueue     = "syn-queue-full" // SYNs dropped: SYN queue full, cookies off
	KindCookies      = "syn-cookies"    // SYN cookies sent
	KindSynackRetx   = "synack-retransmits"
	KindOtherDrops   = "drops-not-full-queue"
	KindCloseWait    = "close-wait"
	KindTimeWait     = "time-wait"
	KindHealthy      = "healthy"
)

// Listener names the listener a finding is about.
type Listener struct {
	Netns     uint32
	NetnsName string
	Addr      string
	Port      uint16
	// Process: "comm[pid]" of the process accepting (else holding) it,
	// Workload its unit, container or pod (identity.Display); "" if unknown.
	Process, Workload string
	// Owners: every process holding it, with its workload's identity.
	Owners []aggregate.Owner
}

// Evidence is one number synq observed over the window, next to the
// kernel's own counter for the same thing over the same window, where the
// kernel has one (netns-wide: it counts every listener of the namespace).
type Evidence struct {
	What    string
	Synq    *uint64 // nil: not visible to synq's hooks on this kernel
	Counter string  // the kernel's counter ("TcpExt.ListenOverflows"), "" if none
	Kernel  *int64  // its delta over the window; nil if not read
}

// Finding is one diagnosis.
type Finding struct {
	Kind     string
	Severity Severity
	Listener Listener
	Title    string // what is wrong, in one line
	Evidence []Evidence
	Limit    string // the limit that binds
	Action   string // the one thing to change
	// Inferred: what is inferred from the namespace's counters rather than
	// seen per listener, and what this kernel does not show; "" if nothing.
	Inferred string
	weight   uint64 // orders findings of one severity: connections affected
}

// Diagnose returns the findings of every listener of the window, worst
// first; a listener without any gets one KindHealthy finding.
func Diagnose(in Input) []Finding {
	var out []Finding
	for i := range in.Frame.Rows {
		r := &in.Frame.Rows[i]
		d := diag{in: in, r: r, ns: in.Netns[r.Netns], l: listenerOf(r, in.Procs)}
		fs := d.findings()
		if len(fs) == 0 {
			fs = []Finding{d.healthy()}
		}
		out = append(out, fs...)
	}
	slices.SortStableFunc(out, func(a, b Finding) int {
		if c := cmp.Compare(b.Severity, a.Severity); c != 0 {
			return c
		}
		if c := cmp.Compare(b.weight, a.weight); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Listener.Netns, b.Listener.Netns); c != 0 {
			return c
		}
		return cmp.Compare(a.Listener.Port, b.Listener.Port)
	})
	return out
}

// Found says whether any finding is more than a healthy listener: what the
// exit status tells.
func Found(fs []Finding) bool {
	return slices.ContainsFunc(fs, func(f Finding) bool { return f.Severity > OK })
}

func listenerOf(r *aggregate.Row, procs map[int]*Proc) Listener {
	l := Listener{Netns: r.Netns, NetnsName: r.NetnsName, Addr: r.Addr.String(), Port: r.Port, Owners: r.Owners}
	if len(r.Owners) > 0 {
		o := r.Owners[0] // the accepting ones come first
		l.Process = o.Comm + "[" + itoa(int64(o.PID)) + "]"
		l.Workload = o.Display()
		if p := procs[o.PID]; p != nil && o.Comm == "" {
			l.Process = p.Comm + "[" + itoa(int64(o.PID)) + "]"
		}
	}
	return l
}
