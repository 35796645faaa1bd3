package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

type report struct {
	cfg                   config
	start                 time.Time
	tier                  string
	runs                  []run1
	snap                  *snapResult
	gobench               []string
	notes                 []string
	loadBefore, loadAfter string
}

type modeRow struct {
	mode               string
	median             float64
	rmin, rmed, rmax   float64 // traced/untraced of the same round
	overflows, lost    uint64
	events             uint64
	errs               []string
	progs              map[string]progNs // summed over rounds
	conns              float64           // summed over rounds
	hasRatio, hasConns bool
	cpu                float64 // median busy CPU µs per connection
	cmin, cmed, cmax   float64 // untraced/traced CPU per connection, same round
	cq1, cq3           float64 // their quartiles
	hasCPURatio        bool
	procNs             float64 // an external tracer's own threads, summed over rounds
}

// procPerOp is an external tracer process's own CPU µs per operation (0
// when not measured).
func (row modeRow) procPerOp() float64 {
	if row.conns == 0 {
		return 0
	}
	return row.procNs / 1000 / row.conns
}

// progsPerOp is the kernel time of the mode's programs per operation, µs.
func (row modeRow) progsPerOp() float64 {
	if row.conns == 0 {
		return 0
	}
	var ns float64
	for _, p := range row.progs {
		ns += float64(p.ns.Nanoseconds())
	}
	return ns / 1000 / row.conns
}

// workloads lists the workloads that ran, in order.
func (r *report) workloads() []string {
	var out []string
	for _, x := range r.runs {
		if !slices.Contains(out, x.workload) {
			out = append(out, x.workload)
		}
	}
	return out
}

func (r *report) rows(wl string) []modeRow {
	var out []modeRow
	modes := r.cfg.modes
	if wl != "churn" {
		modes = r.cfg.extModes
	}
	for _, m := range modes {
		row := modeRow{mode: m, progs: map[string]progNs{}}
		var cs, ratios, cpus, cratios []float64
		for _, x := range r.runs {
			if x.mode != m || x.workload != wl {
				continue
			}
			if x.err != "" {
				row.errs = append(row.errs, x.err)
				continue
			}
			cs = append(cs, x.connS)
			row.conns += x.connS * r.cfg.dur.Seconds()
			row.overflows += x.overflows
			row.lost += x.lost
			row.events += x.events
			row.procNs += float64(x.procNs)
			if x.base > 0 {
				ratios = append(ratios, x.connS/x.base)
			}
			if x.cpu > 0 {
				cpus = append(cpus, x.cpu)
				if x.baseCPU > 0 {
					cratios = append(cratios, x.baseCPU/x.cpu)
				}
			}
			for name, p := range x.progs {
				q := row.progs[name]
				row.progs[name] = progNs{runs: q.runs + p.runs, ns: q.ns + p.ns}
			}
		}
		row.hasConns = len(cs) > 0
		row.median = median(cs)
		if len(ratios) > 0 {
			row.hasRatio = true
			row.rmin, row.rmed, row.rmax = slices.Min(ratios), median(ratios), slices.Max(ratios)
		}
		if len(cpus) > 0 {
			row.cpu = median(cpus)
		}
		if len(cratios) > 0 {
			row.hasCPURatio = true
			row.cmin, row.cmed, row.cmax = slices.Min(cratios), median(cratios), slices.Max(cratios)
			row.cq1, row.cq3 = quantile(cratios, 0.25), quantile(cratios, 0.75)
		}
		out = append(out, row)
	}
	return out
}

func sh(name string, args ...string) string {
	b, _ := exec.Command(name, args...).Output()
	return strings.TrimSpace(string(b))
}

func machine() string {
	model := ""
	for _, l := range strings.Split(sh("lscpu"), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && (k == "Model name" || k == "Hypervisor vendor") {
			model += strings.TrimSpace(v) + " "
		}
	}
	return fmt.Sprintf("%s CPUs (nproc), %s; %s; %s", sh("nproc"), strings.TrimSpace(model), sh("uname", "-srm"), memTotal())
}

func memTotal() string {
	b, _ := os.ReadFile("/proc/meminfo")
	l, _, _ := strings.Cut(string(b), "\n")
	return strings.Join(strings.Fields(l), " ")
}

func (r *report) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "WORKLOAD\tMODE\tCPU µs/OP\tCPU RATIO MIN/MED/MAX\tMEDIAN OP/S\tRATIO MIN/MED/MAX\tOVERFLOWS\tLOST\tERRORS\n")
	for _, wl := range r.workloads() {
		for _, row := range r.rows(wl) {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", wl, row.mode, cpuCell(row), strings.ReplaceAll(cpuRatioCell(row), "**", ""), connCell(row), ratioCell(row), row.overflows, row.lost, errCell(row))
		}
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "WORKLOAD\tMODE\tPROGRAM\tRUNS/OP\tNS/RUN\n")
	for _, wl := range r.workloads() {
		for _, row := range r.rows(wl) {
			for _, p := range progLines(row) {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", wl, row.mode, p[0], p[1], p[2])
			}
		}
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, g := range r.goals() {
		fmt.Fprintf(w, "goal %s %s: %s\n", g.workload, g.what, g.verdict)
	}
	if s := r.snap; s != nil {
		fmt.Fprintf(w, "\nlisteners snapshot, %d listeners in %d netns: in-process %v (found %d), synq listeners %v, max RSS %.1f MiB %s\n",
			s.listeners, s.netns, median(s.inproc).Round(time.Millisecond), s.found,
			median(s.cli).Round(time.Millisecond), float64(s.cliRSSKiB)/1024, s.cliErr)
		for _, o := range s.others {
			fmt.Fprintf(w, "%s: wall %v, CPU %v, max RSS %.1f MiB %s\n", o.what, median(o.wall).Round(time.Millisecond),
				median(o.cpu).Round(time.Millisecond), float64(o.rssKiB)/1024, o.err)
			if len(o.scrapes) > 0 {
				fmt.Fprintf(w, "  one scrape: first %v, then %v (%d bytes)\n", median(o.firstScrape).Round(time.Millisecond),
					median(o.scrapes).Round(time.Millisecond), o.scrapeBytes)
			}
		}
	}
	for _, n := range r.notes {
		fmt.Fprintln(w, "note:", n)
	}
}

func connCell(row modeRow) string {
	if !row.hasConns {
		return "-"
	}
	return fmt.Sprintf("%.0f", row.median)
}

func cpuCell(row modeRow) string {
	if row.cpu == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", row.cpu)
}

func cpuRatioCell(row modeRow) string {
	if !row.hasCPURatio {
		return "-"
	}
	return fmt.Sprintf("%.3f / **%.3f** / %.3f", row.cmin, row.cmed, row.cmax)
}

func ratioCell(row modeRow) string {
	if !row.hasRatio {
		return "-"
	}
	return fmt.Sprintf("%.3f / %.3f / %.3f", row.rmin, row.rmed, row.rmax)
}

func errCell(row modeRow) string {
	if len(row.errs) == 0 {
		return ""
	}
	return fmt.Sprintf("%d failed: %s", len(row.errs), row.errs[0])
}

// progLines: per program, runs per connection and kernel ns per run over
// every round of the mode; programs that never ran are left out.
func progLines(row modeRow) [][3]string {
	names := make([]string, 0, len(row.progs))
	for n, p := range row.progs {
		if p.runs > 0 {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	var out [][3]string
	for _, n := range names {
		p := row.progs[n]
		per := "-"
		if row.conns > 0 {
			per = fmt.Sprintf("%.2f", float64(p.runs)/row.conns)
		}
		out = append(out, [3]string{n, per, fmt.Sprintf("%.0f", p.perRun())})
	}
	return out
}

func (r *report) markdown(w io.Writer) {
	c := r.cfg
	fmt.Fprintf(w, "# synq benchmarks\n\n")
	fmt.Fprintf(w, "Generated by `make -f bench.mk bench-full` (bench/cmd/synqbench and the Go benchmarks in bench/ and internal/sockstate) on %s. Do not edit by hand: rerun it.\n\n", r.start.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "- machine: %s\n", machine())
	fmt.Fprintf(w, "- tier: %s\n", orDash(r.tier))
	fmt.Fprintf(w, "- load: before %s; after %s", r.loadBefore, r.loadAfter)
	if c.label != "" {
		fmt.Fprintf(w, " — %s", c.label)
	}
	fmt.Fprintf(w, "\n- runs: %d rounds of %v per mode and workload, each traced run right after an untraced run of the same workload, its ratio taken against that run (the machine's throughput drifts by tens of percent within a minute); kernel.bpf_stats_enabled=1 throughout (restored after), so traced runs include its two clock reads per program run\n", c.rounds, c.dur)
	if c.before != "" {
		fmt.Fprintf(w, "- the `-before` modes run synq built from %s\n", orDash(c.beforeRev))
	}
	fmt.Fprintf(w, "- CPU time: %s\n", clock.what)
	fmt.Fprintf(w, "- workloads, each in a private netns on loopback:\n")
	for _, wl := range r.workloads() {
		fmt.Fprintf(w, "  - `%s`: %s\n", wl, workloadDesc[wl])
	}
	r.goalsMarkdown(w)
	r.costMarkdown(w)
	for _, wl := range r.workloads() {
		r.workloadMarkdown(w, wl)
	}
	if s := r.snap; s != nil {
		fmt.Fprintf(w, "\n## Scale: listeners snapshot, top, serve (goal: snapshot ≤ 200 ms, RSS ≤ 60 MB)\n\n")
		fmt.Fprintf(w, "%d listeners spread over %d named netns (plus whatever the host has); median of 3.\n\n", s.listeners, s.netns)
		fmt.Fprintf(w, "| what | wall time | CPU (user+sys) | max RSS |\n|---|---|---|---|\n")
		fmt.Fprintf(w, "| `tracer.Snapshotter.Listeners` in each netns (in-process, %d found) | %v | - | - |\n", s.found, median(s.inproc).Round(time.Millisecond))
		if s.cliErr != "" {
			fmt.Fprintf(w, "| `synq listeners --output json` | failed: `%s` | - | - |\n", s.cliErr)
		} else {
			fmt.Fprintf(w, "| `synq listeners --output json > /dev/null` (process start to exit) | %v | - | %.1f MiB |\n", median(s.cli).Round(time.Millisecond), float64(s.cliRSSKiB)/1024)
		}
		for _, o := range s.others {
			if o.err != "" {
				fmt.Fprintf(w, "| %s | failed: `%s` | - | - |\n", o.what, o.err)
				continue
			}
			fmt.Fprintf(w, "| %s | %v | %v | %.1f MiB |\n", o.what, median(o.wall).Round(time.Millisecond),
				median(o.cpu).Round(time.Millisecond), float64(o.rssKiB)/1024)
			if len(o.scrapes) > 0 {
				fmt.Fprintf(w, "| one scrape of that `synq serve` (GET /metrics to the last byte, %d bytes, owners and workload identities on): the first after start / the later ones | %v / %v | - | - |\n",
					o.scrapeBytes, median(o.firstScrape).Round(time.Millisecond), median(o.scrapes).Round(time.Millisecond))
			}
		}
	}

	if len(r.gobench) > 0 {
		fmt.Fprintf(w, "\n## Go benchmarks\n\nReader: `tracer.Decode` + per-listener aggregation (`aggregate.Top`, `aggregate.Latency`, and `exporter.Observe` for `synq serve`) on synthetic ring-buffer records, one goroutine (events/s is per core; goal ≥ 3M events/s/core, 0 allocs/op). `synq states`: `internal/sockstate` BenchmarkCount.\n\n```\n")
		for _, g := range r.gobench {
			for _, l := range strings.Split(g, "\n") {
				if strings.HasPrefix(l, "Benchmark") || strings.HasPrefix(l, "cpu:") || strings.HasPrefix(l, "pkg:") {
					fmt.Fprintln(w, l)
				}
			}
		}
		fmt.Fprintf(w, "```\n")
	}
	for _, n := range r.notes {
		fmt.Fprintf(w, "\nNote: %s\n", n)
	}
	if r.cfg.findings != "" {
		if b, err := os.ReadFile(r.cfg.findings); err == nil {
			fmt.Fprintf(w, "\n%s", b)
		}
	}

	fmt.Fprintf(w, "\n## Reproduce\n\nAs root, with no other load on the machine (check `pgrep qemu`):\n\n```sh\nmake -f bench.mk bench-full     # or, by hand:\ngo build -o bin/synq ./cmd/synq\ngo test -run '^$' -bench . -benchmem ./bench/\nSYNQ_BENCH_SOCKETS=100000 go test -run '^$' -bench BenchmarkCount -benchmem ./internal/sockstate/\ngo run ./bench/cmd/synqbench -rounds %d -dur %v -c %d -listeners %d -netns %d -workloads %s -out docs/benchmarks.md\n```\n",
		c.rounds, c.dur, c.conc, c.listeners, c.netns, strings.Join(c.workloads, ","))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

var modeDesc = map[string]string{
	"untraced":             "nothing",
	"empty":                "empty BPF programs (r0 = 0) on every hook of the tracepoint tier (tp_btf inet_sock_set_state, sk_data_ready, tcp_destroy_sock, kfree_skb, tcp_retransmit_synack; tracepoint sys_exit_accept4): the floor any program pays there, bpf_stats included",
	"empty-accept":         "one empty program on tracepoint/syscalls/sys_exit_accept4 only: what hooking accept(2) costs on the tracepoint tier (every syscall of the host takes the slow path), the floor of any mode that measures accept latency there",
	"tracer":               "tracer.Open in-process, every kind streamed, WakeupBytes 64 KiB, poll 100 ms, events read and dropped",
	"tracer-no-accept":     "as tracer, every kind but accept streamed: the tracepoint tier then leaves the syscall tracepoints alone",
	"tracer-counts":        "tracer.Open in-process, nothing streamed (Kinds empty): per-listener counters in the kernel only",
	"tracer-serve-batched": "tracer.Open in-process as `synq serve` opens it: accepts hooked for the in-kernel latency histogram but not streamed, ack-overflow streamed, no exact maxima (NoMaxima), WakeupBytes 64 KiB, poll 100 ms",
	"tracer-top":           "tracer.Open in-process as `synq top` opens it: as tracer-serve-batched, with the exact maxima kept (listener_max: deepest queues, longest latency, last acceptor) and syn-drop streamed too",
	"synq-trace":           "`synq trace --output json > /dev/null`",
	"synq-serve":           "`synq serve` (not scraped)",
	"synq-top":             "`synq top --output json --interval 1s > /dev/null`",
	"synq-top-before":      "the same `synq top` built from the -before binary",
	"synq-serve-before":    "the same `synq serve` built from the -before binary",
	"bpftrace":             "bpftrace: per-port count of children (inet_sock_set_state LISTEN→SYN_RECV) and tcp_retransmit_synack",
}

// quantile q of xs, linearly interpolated between order statistics.
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	pos := q * float64(len(s)-1)
	i := int(pos)
	if i+1 >= len(s) {
		return s[len(s)-1]
	}
	return s[i] + (pos-float64(i))*(s[i+1]-s[i])
}
