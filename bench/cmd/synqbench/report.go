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
	hasCPURatio        bool
}

func (r *report) rows() []modeRow {
	var out []modeRow
	for _, m := range r.cfg.modes {
		row := modeRow{mode: m, progs: map[string]progNs{}}
		var cs, ratios, cpus, cratios []float64
		for _, x := range r.runs {
			if x.mode != m {
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
	fmt.Fprintf(tw, "MODE\tCPU µs/CONN\tCPU RATIO MIN/MED/MAX\tMEDIAN CONN/S\tRATIO MIN/MED/MAX\tOVERFLOWS\tLOST\tERRORS\n")
	for _, row := range r.rows() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", row.mode, cpuCell(row), strings.ReplaceAll(cpuRatioCell(row), "**", ""), connCell(row), ratioCell(row), row.overflows, row.lost, errCell(row))
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "MODE\tPROGRAM\tRUNS/CONN\tNS/RUN\n")
	for _, row := range r.rows() {
		for _, p := range progLines(row) {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", row.mode, p[0], p[1], p[2])
		}
	}
	tw.Flush()
	if s := r.snap; s != nil {
		fmt.Fprintf(w, "\nlisteners snapshot, %d listeners in %d netns: in-process %v (found %d), synq listeners %v, max RSS %.1f MiB %s\n",
			s.listeners, s.netns, median(s.inproc).Round(time.Millisecond), s.found,
			median(s.cli).Round(time.Millisecond), float64(s.cliRSSKiB)/1024, s.cliErr)
		for _, o := range s.others {
			fmt.Fprintf(w, "%s: wall %v, CPU %v, max RSS %.1f MiB %s\n", o.what, median(o.wall).Round(time.Millisecond),
				median(o.cpu).Round(time.Millisecond), float64(o.rssKiB)/1024, o.err)
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
	fmt.Fprintf(w, "\n- workload: loopback connection churn in a private netns: Go server accepting and closing on a backlog-4096 listener, %d clients connecting and closing (RST) as fast as they can, ip_local_port_range 10000-65000; %d rounds of %v per mode, each traced run right after an untraced run, its ratio taken against that run (the machine's throughput drifts by tens of percent within a minute); kernel.bpf_stats_enabled=1 throughout (restored after), so traced runs include its two clock reads per program run\n\n", c.conc, c.rounds, c.dur)

	fmt.Fprintf(w, "## Overhead on connection churn (goal: median traced/untraced ≥ 0.97)\n\n")
	fmt.Fprintf(w, "Two measures of the same runs. *CPU per connection* is the machine's busy CPU time (/proc/stat user+nice+system+irq+softirq: every process, the tracer's reader included, and the softirqs the BPF programs run in) divided by the connections churned; the ratio untraced/traced of it is the throughput the churn keeps when the CPUs are the limit, and it is steady where conn/s is not: a client stalled on a retransmitted SYN or a neighbour VM taking the host makes the machine idle or stolen, not busy. *conn/s* is raw throughput, paired with the untraced run just before; its spread on this machine is shown as measured.\n\n")
	fmt.Fprintf(w, "| mode | what runs | CPU µs/conn (median) | untraced/traced CPU per conn min / **median** / max | median conn/s | traced/untraced conn/s min / median / max | ListenOverflows | lost events |\n|---|---|---|---|---|---|---|---|\n")
	for _, row := range r.rows() {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %d | %d |\n", row.mode, modeDesc[row.mode], cpuCell(row), cpuRatioCell(row), connCell(row), ratioCell(row), row.overflows, row.lost)
	}
	for _, row := range r.rows() {
		if len(row.errs) > 0 {
			fmt.Fprintf(w, "\n%s: %d of %d runs failed: `%s`\n", row.mode, len(row.errs), c.rounds, row.errs[0])
		}
	}

	fmt.Fprintf(w, "\n## Kernel time per program run (goal: ≤ 150 ns per event per hook)\n\n")
	fmt.Fprintf(w, "run_time_ns / run_cnt over every traced run (`(*ebpf.Program).Stats()` for the in-process tracer, `bpftool prog show` for the other processes). Runs/conn is how often the hook fires per churned connection. The `empty` rows are the floor: an empty program on the same hook, so synq's own cost per run is its ns/run minus the floor of that hook.\n\n")
	fmt.Fprintf(w, "| mode | program | runs/conn | ns/run |\n|---|---|---|---|\n")
	for _, row := range r.rows() {
		for _, p := range progLines(row) {
			fmt.Fprintf(w, "| %s | %s | %s | %s |\n", row.mode, p[0], p[1], p[2])
		}
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
	for _, row := range r.rows() {
		if row.mode == "tracer" && row.conns > 0 {
			fmt.Fprintf(w, "\nThe in-process tracer read %d events (%.2f per connection; other processes' connections count too: the hooks are system-wide).\n", row.events, float64(row.events)/row.conns)
		}
	}
	for _, n := range r.notes {
		fmt.Fprintf(w, "\nNote: %s\n", n)
	}
	if r.cfg.findings != "" {
		if b, err := os.ReadFile(r.cfg.findings); err == nil {
			fmt.Fprintf(w, "\n%s", b)
		}
	}

	fmt.Fprintf(w, "\n## Reproduce\n\nAs root, with no other load on the machine (check `pgrep qemu`):\n\n```sh\nmake -f bench.mk bench-full     # or, by hand:\ngo build -o bin/synq ./cmd/synq\ngo test -run '^$' -bench . -benchmem ./bench/\nSYNQ_BENCH_SOCKETS=100000 go test -run '^$' -bench BenchmarkCount -benchmem ./internal/sockstate/\ngo run ./bench/cmd/synqbench -rounds %d -dur %v -c %d -listeners %d -netns %d -out docs/benchmarks.md\n```\n",
		c.rounds, c.dur, c.conc, c.listeners, c.netns)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

var modeDesc = map[string]string{
	"untraced":             "nothing",
	"empty":                "empty BPF programs (r0 = 0) on the tracepoint tier's hooks: the floor any program pays there, bpf_stats included",
	"empty-accept":         "one empty program on tracepoint/syscalls/sys_exit_accept4 only: what hooking accept(2) costs on the tracepoint tier (every syscall of the host takes the slow path), the floor of any mode that measures accept latency there",
	"tracer":               "tracer.Open in-process, every kind streamed, WakeupBytes 64 KiB, poll 100 ms, events read and dropped",
	"tracer-no-accept":     "as tracer, every kind but accept streamed: the tracepoint tier then leaves the syscall tracepoints alone",
	"tracer-counts":        "tracer.Open in-process, nothing streamed (Kinds empty): per-listener counters in the kernel only",
	"tracer-serve-batched": "tracer.Open in-process as `synq serve` opens it: accepts hooked for the in-kernel latency histogram but not streamed, ack-overflow streamed, WakeupBytes 64 KiB, poll 100 ms",
	"synq-trace":           "`synq trace --output json > /dev/null`",
	"synq-serve":           "`synq serve` (not scraped)",
	"bpftrace":             "bpftrace: per-port count of children (inet_sock_set_state LISTEN→SYN_RECV) and tcp_retransmit_synack",
}
