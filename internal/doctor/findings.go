package doctor

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/synq-trace/synq/internal/aggregate"
	"github.com/synq-trace/synq/internal/sockstate"
)

// diag diagnoses one listener.
type diag struct {
	in Input
	r  *aggregate.Row
	ns *Netns // nil when its namespace could not be read
	l  Listener
}

func (d *diag) findings() []Finding {
	var out []Finding
	if f, ok := d.notAccepting(); ok {
		out = append(out, f)
	} else if f, ok := d.overflowing(); ok {
		out = append(out, f)
	}
	out = append(out, d.synSide()...)
	if f, ok := d.otherDrops(); ok {
		out = append(out, f)
	}
	return append(out, d.states()...)
}

// delta is the namespace's counter over the window (nil when not read).
func (d *diag) delta(key string) *int64 {
	if d.ns == nil || d.ns.Delta == nil {
		return nil
	}
	v, ok := d.ns.Delta[key]
	if !ok {
		return nil
	}
	return &v
}

func (d *diag) sysctl(f func(Sysctls) *int64) *int64 {
	if d.ns == nil {
		return nil
	}
	return f(d.ns.Sysctls)
}

func (d *diag) finding(kind string, sev Severity, weight uint64, title string) Finding {
	return Finding{Kind: kind, Severity: sev, Listener: d.l, Title: title, weight: weight}
}

func ev(what string, synq *uint64, counter string, kernel *int64) Evidence {
	return Evidence{What: what, Synq: synq, Counter: counter, Kernel: kernel}
}

func u(v uint64) *uint64 { return &v }

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

// overflows is what synq saw dropped on a full accept queue: final ACKs,
// and SYNs where the hooks (or the namespace's counters) tell the reason.
func (d *diag) overflows() uint64 {
	n := d.r.AckOverflow
	if d.r.AcceptQueueFull != nil {
		n += *d.r.AcceptQueueFull
	}
	return n
}

// unknownSyn is the SYN-side drops whose reason is not known.
func (d *diag) unknownSyn() uint64 {
	if d.r.SynDerived != nil && d.r.SynQueueFull == nil {
		return *d.r.SynDerived
	}
	return 0
}

// queueEvidence is the accept queue's own numbers and the kernel's
// overflow counters of the namespace over the window.
func (d *diag) queueEvidence() []Evidence {
	r := d.r
	out := []Evidence{
		ev(fmt.Sprintf("accept queue now %d, peak %d, limit %d (sk_max_ack_backlog)", r.AcceptQueue.Now, r.AcceptQueue.Peak, r.AcceptQueue.Max), nil, "", nil),
		ev("connections accepted", u(r.Accepts), "", nil),
	}
	ovf := d.delta("TcpExt.ListenOverflows")
	if r.AcceptQueueFull != nil {
		out = append(out, ev(fmt.Sprintf("dropped on a full accept queue (%d final ACKs: half-open connections, %d SYNs)", r.AckOverflow, *r.AcceptQueueFull),
			u(d.overflows()), "TcpExt.ListenOverflows", ovf))
	} else {
		out = append(out, ev("final ACKs dropped on a full accept queue (half-open connections; the SYNs dropped for it are not visible on this tier)",
			u(r.AckOverflow), "TcpExt.ListenOverflows", ovf))
	}
	return append(out, ev("connections dropped in all (the listener's ListenDrops)", u(r.Drops), "TcpExt.ListenDrops", d.delta("TcpExt.ListenDrops")))
}

// inferredSyn says what the tier leaves to the namespace's counters.
func (d *diag) inferredSyn() string {
	r := d.r
	if r.SynDerived == nil {
		return ""
	}
	if r.SettledBy != "" {
		return fmt.Sprintf("SYN-side drops by reason are not visible per listener on the %s tier: their reason here is inferred from the netns's counters (%s)", d.in.Frame.Tier, r.SettledBy)
	}
	if *r.SynDerived > 0 && r.SynQueueFull == nil {
		return fmt.Sprintf("%d SYN-side drops (ListenDrops beyond the final ACKs seen): their reason is not visible per listener on the %s tier, and the netns's counters do not settle it (other listeners dropped too)", *r.SynDerived, d.in.Frame.Tier)
	}
	return ""
}

// notAccepting: connections waited (or were dropped) while the
// application accepted none, or the process holding the socket is stopped
// or in uninterruptible sleep.
func (d *diag) notAccepting() (Finding, bool) {
	r := d.r
	waiting := r.AcceptQueue.Now > 0 || d.overflows() > 0 || d.unknownSyn() > 0
	if !waiting {
		return Finding{}, false
	}
	var stuck []*Proc
	var states []string
	for _, o := range r.Owners {
		p := d.in.Procs[o.PID]
		if p == nil {
			continue
		}
		states = append(states, fmt.Sprintf("%s[%d] %s", p.Comm, p.PID, stateWords(p)))
		if p.State == "T" || p.State == "t" || p.State == "D" {
			stuck = append(stuck, p)
		}
	}
	// Accepts near zero: under a twentieth of what arrived, with the queue
	// at its limit; or an accept latency far above every other listener's.
	arrived := r.Enqueued + r.Drops
	nearZero := r.Accepts*20 < arrived && r.AcceptQueue.Peak >= r.AcceptQueue.Max
	if r.Accepts > 0 && len(stuck) == 0 && !nearZero && !d.latencyOutlier() {
		return Finding{}, false
	}
	f := d.finding(KindNotAccepting, Critical, r.Drops+uint64(r.AcceptQueue.Now)+1<<32, "the application is not accepting: connections wait in the accept queue")
	f.Evidence = d.queueEvidence()
	if len(states) > 0 {
		f.Evidence = append(f.Evidence, ev("process state (/proc/PID/stat): "+strings.Join(states, ", "), nil, "", nil))
	}
	f.Limit = fmt.Sprintf("the application: it accepted %d of %d connections that arrived in %s (the queue is not too small: it is not emptied)",
		r.Accepts, arrived, d.in.Frame.Interval.Round(time.Millisecond))
	if r.Latency.Count > 0 {
		f.Evidence = append(f.Evidence, ev(fmt.Sprintf("accept latency p50 %s, p99 %s, max %s", r.Latency.P50, r.Latency.P99, r.Latency.Max), nil, "", nil))
	}
	var p *Proc
	if len(stuck) > 0 {
		p = stuck[0]
	} else if len(r.Owners) > 0 {
		p = d.in.Procs[r.Owners[0].PID]
	}
	switch {
	case p == nil:
		f.Action = "no process of this host holds the socket (or /proc was not readable): find the owner with `ss -ltnp sport = :" + itoa(int64(r.Port)) + "`"
	case p.State == "T" || p.State == "t":
		f.Action = fmt.Sprintf("%s[%d] is stopped (SIGSTOP or a debugger): resume it with `kill -CONT %d`, and find what stopped it", p.Comm, p.PID, p.PID)
	case p.State == "D":
		f.Action = fmt.Sprintf("%s[%d] is in uninterruptible sleep (in the kernel at %s): it waits on I/O (disk, NFS): look at `cat /proc/%d/stack` and the device it waits for", p.Comm, p.PID, orUnknown(p.Wchan), p.PID)
	case p.State == "R":
		f.Action = fmt.Sprintf("%s[%d] is running but never gets to accept(): its accepting thread is starved of CPU or busy elsewhere: profile it (`perf top -p %d`), give accept() its own thread or more CPU", p.Comm, p.PID, p.PID)
	default:
		f.Action = fmt.Sprintf("%s[%d] is %s without calling accept(): it is blocked on something else (a lock, a downstream call, a full worker pool): dump its threads' stacks", p.Comm, p.PID, stateWords(p))
	}
	f.Inferred = d.inferredSyn()
	return f, true
}

// latencyOutlier: the listener's accept latency p99 is at least a second
// and a hundred times the median p99 of the other listeners that accepted.
func (d *diag) latencyOutlier() bool {
	p99 := d.r.Latency.P99
	if p99 < time.Second {
		return false
	}
	var others []time.Duration
	for i := range d.in.Frame.Rows {
		o := &d.in.Frame.Rows[i]
		if o != d.r && o.Latency.Count > 0 {
			others = append(others, o.Latency.P99)
		}
	}
	if len(others) == 0 {
		return false
	}
	slices.Sort(others)
	return p99 >= 100*others[len(others)/2]
}

func stateWords(p *Proc) string {
	w := map[string]string{"R": "running", "S": "sleeping", "D": "in uninterruptible sleep", "T": "stopped", "t": "stopped by a tracer",
		"Z": "a zombie", "I": "idle"}[p.State]
	if w == "" {
		w = "state " + p.State
	}
	s := fmt.Sprintf("%s (%s)", w, p.State)
	if p.Wchan != "" && p.State != "R" {
		s += " in " + p.Wchan
	}
	return s
}

func orUnknown(s string) string {
	if s == "" {
		return "an unknown place"
	}
	return s
}

// overflowing: the accept queue overflowed while the application accepted:
// the limit is the listen() backlog or somaxconn.
func (d *diag) overflowing() (Finding, bool) {
	r := d.r
	ovf := d.overflows()
	inferred := ovf == 0 && d.unknownSyn() > 0 && r.AcceptQueue.Peak >= r.AcceptQueue.Max
	if ovf == 0 && !inferred {
		return Finding{}, false
	}
	backlog := int64(r.AcceptQueue.Max)
	som := d.sysctl(func(s Sysctls) *int64 { return s.Somaxconn })
	p := d.owner()
	srv := Recognize(p)
	var f Finding
	switch {
	case som != nil && backlog < *som:
		f = d.finding(KindAppBacklog, Critical, ovf+d.unknownSyn(), "the application's listen() backlog is the limit: the accept queue overflows")
		f.Limit = fmt.Sprintf("the backlog the application passed to listen(): %d, below net.core.somaxconn %d: raising somaxconn will not help", backlog, *som)
		f.Action = fmt.Sprintf("raise the backlog %s passes to listen() (up to %d without touching somaxconn): %s", procName(p), *som, srv.SettingFor(r.Port, *som))
	case som != nil:
		f = d.finding(KindSomaxconn, Critical, ovf+d.unknownSyn(), "net.core.somaxconn caps the backlog: the accept queue overflows")
		next := max(2**som, 4096)
		f.Limit = fmt.Sprintf("net.core.somaxconn %d of netns %s: the backlog the application asked for was capped to it", *som, nsName(d.l))
		f.Action = fmt.Sprintf("raise both: `sysctl -w net.core.somaxconn=%d` inside the listener's network namespace (a pod: its securityContext sysctls), and the backlog %s passes to listen() (%s); the backlog is taken at listen(): restart it", next, procName(p), srv.SettingFor(r.Port, next))
	default:
		f = d.finding(KindAppBacklog, Critical, ovf, "the accept queue overflows")
		f.Limit = fmt.Sprintf("the accept queue's limit %d (net.core.somaxconn of its netns could not be read)", backlog)
		f.Action = "raise the backlog the application passes to listen(): " + srv.SettingFor(r.Port, 4096)
	}
	f.Evidence = append(d.queueEvidence(), ev("net.core.somaxconn of the netns", nil, "", som))
	if r.Latency.Count > 0 {
		f.Evidence = append(f.Evidence, ev(fmt.Sprintf("accept latency p50 %s, p99 %s, max %s", r.Latency.P50, r.Latency.P99, r.Latency.Max), nil, "", nil))
	}
	f.Inferred = d.inferredSyn()
	if inferred {
		f.Inferred = strings.TrimPrefix(f.Inferred+"; ", "; ") + "the accept queue reached its limit while SYNs were dropped: read as accept-queue overflows"
	}
	return f, true
}

func nsName(l Listener) string {
	if l.NetnsName != "" {
		return l.NetnsName
	}
	return "net:[" + itoa(int64(l.Netns)) + "]"
}

func (d *diag) owner() *Proc {
	if len(d.r.Owners) == 0 {
		return nil
	}
	return d.in.Procs[d.r.Owners[0].PID]
}

func procName(p *Proc) string {
	if p == nil {
		return "the application"
	}
	return fmt.Sprintf("%s[%d]", p.Comm, p.PID)
}

// states: CLOSE_WAIT and TIME_WAIT piles on the listener's port.
func (d *diag) states() []Finding {
	if d.ns == nil || d.ns.States == nil {
		return nil
	}
	var out []Finding
	port := d.r.Port
	cw := d.ns.States.Ports[sockstate.PortState{Port: port, State: sockstate.CloseWait}]
	if th := d.in.States.CloseWait; th > 0 && cw >= th {
		f := d.finding(KindCloseWait, Warning, uint64(cw), fmt.Sprintf("%d connections of this listener in CLOSE_WAIT: the application does not close what its clients closed", cw))
		f.Evidence = []Evidence{ev(fmt.Sprintf("CLOSE_WAIT sockets on local port %d (sock_diag, like ss); %d in the netns; threshold %d", port, d.ns.States.State(sockstate.CloseWait), th), u(uint64(cw)), "", nil)}
		f.Limit = "the application's file descriptors (ulimit -n): the kernel never times CLOSE_WAIT out"
		f.Action = fmt.Sprintf("fix the missing close() in %s after read() returns 0 (list them: `ss -tn state close-wait sport = :%d`)", procName(d.owner()), port)
		out = append(out, f)
	}
	tw := d.ns.States.Ports[sockstate.PortState{Port: port, State: sockstate.TimeWait}]
	if th := d.in.States.TimeWait; th > 0 && tw >= th {
		maxTw := d.sysctl(func(s Sysctls) *int64 { return s.MaxTwBuckets })
		sev := Notice
		ovf := d.delta("TcpExt.TCPTimeWaitOverflow")
		if ovf != nil && *ovf > 0 {
			sev = Warning
		}
		f := d.finding(KindTimeWait, sev, uint64(tw), fmt.Sprintf("%d connections of this listener in TIME_WAIT: the server closes first", tw))
		f.Evidence = []Evidence{
			ev(fmt.Sprintf("TIME_WAIT sockets on local port %d; %d in the netns; threshold %d", port, d.ns.States.State(sockstate.TimeWait), th), u(uint64(tw)), "", nil),
			ev("net.ipv4.tcp_max_tw_buckets", nil, "", maxTw),
			ev("TIME_WAIT sockets the kernel could not keep (closed at once)", nil, "TcpExt.TCPTimeWaitOverflow", ovf),
		}
		f.Limit = "net.ipv4.tcp_max_tw_buckets of the netns: past it TIME_WAIT sockets are destroyed at once (harmless on a server, but counted)"
		f.Action = "let the clients close first (HTTP keep-alive, the client sending FIN), or raise net.ipv4.tcp_max_tw_buckets if TCPTimeWaitOverflow moves"
		out = append(out, f)
	}
	return out
}

// healthy is the one line of a listener with nothing to say.
func (d *diag) healthy() Finding {
	r := d.r
	f := d.finding(KindHealthy, OK, 0, fmt.Sprintf("nothing seen: %d accepted, %d dropped, accept queue peak %d of %d", r.Accepts, r.Drops, r.AcceptQueue.Peak, r.AcceptQueue.Max))
	f.Evidence = []Evidence{ev("connections dropped (the listener's ListenDrops)", u(r.Drops), "", nil)}
	return f
}
