// Command synqbench measures what tracing costs the traced host (issue #7):
// a loopback connection-churn workload in a private netns, untraced and
// traced alternately (synq's tracer in-process, `synq trace`, `synq serve`,
// an equivalent bpftrace script), the kernel time per program run from
// kernel.bpf_stats_enabled, and the time and memory of a `synq listeners`
// snapshot over many listeners. It prints a table and, with -out, writes it
// as Markdown together with the Go benchmark output given by -gobench.
//
// It must run as root; it changes kernel.bpf_stats_enabled while it runs and
// restores it on exit.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/synq-trace/synq/internal/command"
	"github.com/synq-trace/synq/internal/exporter"
	"github.com/synq-trace/synq/internal/netlab"
	"github.com/synq-trace/synq/tracer"
)

type config struct {
	rounds    int
	dur       time.Duration
	conc      int
	modes     []string
	extModes  []string
	workloads []string
	synq      string
	before    string
	beforeRev string
	listeners int
	netns     int
	out       string
	gobench   []string
	settle    time.Duration
	label     string
	bpftrace  string
	findings  string
}

func main() {
	var c config
	var modes, extModes, workloads, gobench string
	flag.IntVar(&c.rounds, "rounds", 5, "rounds; each runs every mode once, untraced first")
	flag.DurationVar(&c.dur, "dur", 5*time.Second, "length of one churn run")
	flag.IntVar(&c.conc, "c", 8, "concurrent clients")
	flag.StringVar(&modes, "modes", "untraced,empty,empty-accept,tracer-counts,tracer-serve-batched,tracer-top,synq-serve,synq-top,synq-trace,bpftrace", "modes to run, comma-separated")
	flag.StringVar(&extModes, "ext-modes", "untraced,empty,empty-accept,tracer-serve-batched,tracer-top,synq-serve,synq-top,synq-trace,bpftrace", "modes of the third-party workloads")
	flag.StringVar(&workloads, "workloads", "churn,nginx-ab,nginx-wrk,redis-get", "workloads, comma-separated: churn (synq's Go server), nginx-ab, nginx-wrk, redis-get")
	flag.StringVar(&c.before, "before", "", "an older synq binary for the modes synq-top-before and synq-serve-before")
	flag.StringVar(&c.beforeRev, "before-rev", "", "what -before was built from, for the report")
	flag.StringVar(&c.synq, "synq", "bin/synq", "synq binary for the synq-trace, synq-serve and listeners runs")
	flag.IntVar(&c.listeners, "listeners", 10000, "listeners for the snapshot run (0 skips it)")
	flag.IntVar(&c.netns, "netns", 10, "network namespaces the listeners are spread over")
	flag.StringVar(&c.out, "out", "", "write the report as Markdown to this file")
	flag.StringVar(&gobench, "gobench", "", "files holding `go test -bench` output to include, comma-separated")
	flag.DurationVar(&c.settle, "settle", 2*time.Second, "wait after starting an external tracer before the run")
	flag.StringVar(&c.label, "label", "", "note on the conditions, printed in the report (e.g. \"under load\")")
	flag.StringVar(&c.bpftrace, "bpftrace", bpftraceScript, "bpftrace program of the bpftrace mode")
	flag.StringVar(&c.findings, "findings", "", "Markdown file of findings to include in the report")
	flag.Parse()
	c.modes = strings.Split(modes, ",")
	c.extModes = strings.Split(extModes, ",")
	c.workloads = strings.Split(workloads, ",")
	if gobench != "" {
		c.gobench = strings.Split(gobench, ",")
	}
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "synqbench:", err)
		os.Exit(1)
	}
}

func run(c config) error {
	if os.Geteuid() != 0 {
		return errors.New("must run as root (netns, BPF)")
	}
	restore, err := enableBPFStats()
	if err != nil {
		return err
	}
	defer restore()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		restore()
		clock.close()
		os.Exit(130)
	}()

	clock = newCPUClock()
	defer clock.close()
	r := &report{cfg: c, start: time.Now(), loadBefore: loadNote()}
	if err := churnAll(c, r); err != nil {
		return err
	}
	if c.listeners > 0 {
		if err := snapshotScale(c, r); err != nil {
			r.notes = append(r.notes, "listeners snapshot: "+err.Error())
		}
	}
	r.loadAfter = loadNote()
	for _, f := range c.gobench {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		r.gobench = append(r.gobench, string(b))
	}
	r.print(os.Stdout)
	if c.out != "" {
		f, err := os.Create(c.out)
		if err != nil {
			return err
		}
		r.markdown(f)
		if err := f.Close(); err != nil {
			return err
		}
		fmt.Println("wrote", c.out)
	}
	return nil
}

// enableBPFStats sets kernel.bpf_stats_enabled=1 (run_time_ns and run_cnt
// per program) and returns what puts the old value back.
func enableBPFStats() (func(), error) {
	const p = "/proc/sys/kernel/bpf_stats_enabled"
	old, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	if err := os.WriteFile(p, []byte("1"), 0o644); err != nil {
		return nil, fmt.Errorf("enable BPF stats: %w", err)
	}
	return func() { _ = os.WriteFile(p, old, 0o644) }, nil
}

// churnEnv is the workload: a private netns with a Go accept-and-close
// server on a backlog-4096 listener.
type churnEnv struct {
	conc int
	ns   *netlab.Netns
	ln   *netlab.Listener
	srv  *netlab.Server
}

func newChurnEnv(conc int) (*churnEnv, error) {
	ns, err := netlab.New("")
	if err != nil {
		return nil, err
	}
	// Without a wide port range TIME_WAIT reuse caps churn at 15-20k conn/s;
	// netlab's churn also closes with RST.
	if err := ns.Sysctl("net.ipv4.ip_local_port_range", "10000 65000"); err != nil {
		ns.Close()
		return nil, err
	}
	ln, err := ns.Listen("tcp4", "127.0.0.1:0", 4096)
	if err != nil {
		ns.Close()
		return nil, err
	}
	return &churnEnv{conc: conc, ns: ns, ln: ln, srv: netlab.Serve(ln, netlab.ServerConfig{})}, nil
}

func (e *churnEnv) close() {
	e.srv.Stop()
	e.ln.Close()
	e.ns.Close()
}

// churnCPU also returns the machine's busy CPU time per connection in µs
// (/proc/stat user+nice+system+irq+softirq, all processes and softirqs,
// the tracer's reader included; idle, iowait and steal excluded). Unlike
// conn/s it does not move when a client stalls (a SYN retransmitted after
// 1 s) or a neighbour takes the host's CPU: the machine is idle or stolen
// then, not busy.
func (e *churnEnv) churnCPU(conc int, d time.Duration) (float64, uint64, float64) {
	before, _ := e.ns.Counters()
	b0 := clock.nowNs()
	t0 := time.Now()
	n := e.ns.Churn(context.Background(), e.ln.String(), conc, d)
	el := time.Since(t0)
	b1 := clock.nowNs()
	after, _ := e.ns.Counters()
	cpu := 0.0
	if n > 0 {
		cpu = float64(b1-b0) / 1e3 / float64(n)
	}
	return float64(n) / el.Seconds(), after.Sub(before)["ListenOverflows"], cpu
}

// clockTicks is USER_HZ, the unit of /proc/stat (100 on Linux).
const clockTicks = 100

func busyTicks() uint64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	var t uint64
	for _, i := range []int{1, 2, 3, 6, 7} {
		if i < len(f) {
			v, _ := strconv.ParseUint(f[i], 10, 64)
			t += v
		}
	}
	return t
}

type run1 struct {
	workload  string
	round     int
	mode      string
	base      float64 // conn/s of the untraced run just before this one
	connS     float64
	cpu       float64 // busy CPU µs per connection
	baseCPU   float64 // of the untraced run just before this one
	overflows uint64
	events    uint64            // events the tracer read (tracer mode)
	lost      uint64            // tracer Stats: lost + recursion misses
	progs     map[string]progNs // kernel cost per program
	// procNs: CPU time the external tracer's own threads ran during the
	// run (schedstat: user and system, not the BPF programs, which run in
	// the workload's tasks and softirqs).
	procNs uint64
	err    string
}

type progNs struct {
	runs uint64
	ns   time.Duration
}

func (p progNs) perRun() float64 {
	if p.runs == 0 {
		return 0
	}
	return float64(p.ns.Nanoseconds()) / float64(p.runs)
}

func churnAll(c config, r *report) error {
	for _, wn := range c.workloads {
		w, err := newWorkload(wn, c.conc)
		if err != nil {
			r.notes = append(r.notes, fmt.Sprintf("workload %s: %v", wn, err))
			fmt.Fprintf(os.Stderr, "workload %s: %v\n", wn, err)
			continue
		}
		modes := c.modes
		if wn != "churn" {
			modes = c.extModes
		}
		runWorkload(c, r, w, modes)
		w.close()
	}
	return nil
}

func runWorkload(c config, r *report, w workload, modes []string) {
	// Warm up: first runs in a fresh netns are slower.
	w.run(min(c.dur, time.Second))
	for round := 1; round <= c.rounds; round++ {
		for _, m := range modes {
			if m == "untraced" {
				continue
			}
			// Each traced run is paired with an untraced run just before
			// it: the machine's throughput drifts by tens of percent over
			// a minute (VM neighbours), far more than tracing costs.
			u := run1{workload: w.name(), round: round, mode: "untraced"}
			u.connS, u.overflows, u.cpu = w.run(c.dur)
			fmt.Fprintf(os.Stderr, "%-9s round %d %-20s %8.0f %s/s cpu %.1f µs overflows=%d\n", w.name(), round, "untraced", u.connS, w.unit(), u.cpu, u.overflows)
			r.runs = append(r.runs, u)
			x := run1{workload: w.name(), round: round, mode: m, base: u.connS, baseCPU: u.cpu}
			var err error
			switch m {
			case "empty":
				err = runEmpty(c, w, &x, false)
			case "empty-accept":
				err = runEmpty(c, w, &x, true)
			case "tracer":
				err = runTracer(c, w, &x, r, traceConfig)
			case "tracer-no-accept":
				cfg := traceConfig
				cfg.Kinds = slices.DeleteFunc(slices.Clone(tracer.AllKinds), func(k tracer.Kind) bool { return k == tracer.KindAccept })
				err = runTracer(c, w, &x, r, cfg)
			case "tracer-counts":
				err = runTracer(c, w, &x, r, tracer.Config{Kinds: []tracer.Kind{}})
			case "tracer-serve-batched":
				cfg := traceConfig
				cfg.Kinds, cfg.AcceptLatency, cfg.NoMaxima = exporter.Kinds(), true, true
				err = runTracer(c, w, &x, r, cfg)
			case "tracer-top":
				cfg := traceConfig
				cfg.Kinds, cfg.AcceptLatency = command.TopKinds(), true
				err = runTracer(c, w, &x, r, cfg)
			case "synq-trace":
				err = runExternal(c, w, &x, []string{c.synq, "trace", "--output", "json"}, "")
			case "synq-serve":
				err = runExternal(c, w, &x, []string{c.synq, "serve", "--listen", serveAddr}, "")
			case "synq-top":
				err = runExternal(c, w, &x, []string{c.synq, "top", "--output", "json", "--interval", "1s"}, "")
			case "synq-top-before", "synq-serve-before":
				if c.before == "" {
					err = errors.New("no -before binary")
					break
				}
				argv := []string{c.before, "top", "--output", "json", "--interval", "1s"}
				if m == "synq-serve-before" {
					argv = []string{c.before, "serve", "--listen", serveAddr}
				}
				err = runExternal(c, w, &x, argv, "")
			case "bpftrace":
				err = runExternal(c, w, &x, []string{"bpftrace", "-e", c.bpftrace}, "Attaching")
			default:
				err = fmt.Errorf("unknown mode %q", m)
			}
			if err == nil && x.connS == 0 {
				err = errors.New("the workload failed (see stderr)")
			}
			if err != nil {
				x.err = err.Error()
			}
			fmt.Fprintf(os.Stderr, "%-9s round %d %-20s %8.0f %s/s cpu %.1f µs overflows=%d %s\n", w.name(), round, m, x.connS, w.unit(), x.cpu, x.overflows, x.err)
			r.runs = append(r.runs, x)
		}
	}
}

// traceConfig is what `synq trace` opens: every kind streamed, 64 KiB
// wakeup watermark, 100 ms poll.
var traceConfig = tracer.Config{WakeupBytes: 64 << 10, PollInterval: 100 * time.Millisecond}

// runTracer traces the run with the public tracer API opened with cfg;
// events are read and dropped.
func runTracer(c config, w workload, x *run1, r *report, cfg tracer.Config) error {
	tr, err := tracer.Open(cfg)
	if err != nil {
		return err
	}
	defer tr.Close()
	r.tier = string(tr.Info().Tier)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var n uint64
	go func() {
		done <- tr.Read(ctx, func(ev *tracer.Event) {
			n++
			fmt.Fprint(io.Discard, ev.Kind)
		})
	}()
	before := progStats(tr)
	x.connS, x.overflows, x.cpu = w.run(c.dur)
	after := progStats(tr)
	cancel()
	if err := <-done; err != nil {
		return err
	}
	x.events = n
	x.progs = map[string]progNs{}
	for name, a := range after {
		b := before[name]
		x.progs[name] = progNs{runs: a.runs - b.runs, ns: a.ns - b.ns}
	}
	if st, err := tr.Stats(); err == nil {
		x.lost = st.Lost + st.RecursionMisses
	}
	return nil
}

func progStats(tr *tracer.Tracer) map[string]progNs {
	out := map[string]progNs{}
	for name, p := range tr.Programs() {
		if st, err := p.Stats(); err == nil {
			out[name] = progNs{runs: st.RunCount, ns: st.Runtime}
		}
	}
	return out
}

// bpftraceScript counts what synq's tracepoint tier counts per listener:
// children (LISTEN -> SYN_RECV on inet_sock_set_state) and SYN-ACK
// retransmits, keyed by local port.
const bpftraceScript = `
tracepoint:sock:inet_sock_set_state /args->oldstate == 10 && args->newstate == 3/ { @children[args->sport] = count(); }
tracepoint:tcp:tcp_retransmit_synack { @synack_retrans[args->sport] = count(); }
`
