package main

import (
	"fmt"
	"io"
	"strings"
)

// goal is one of issue 19's goals on one workload, as medians of the paired
// ratios untraced/traced busy CPU per operation (higher is cheaper).
type goal struct {
	workload, what string
	verdict        string
}

// goals compares the modes' medians of paired ratios, each against the
// floor or the mode measured in the same run.
func (r *report) goals() []goal {
	var out []goal
	for _, wl := range r.workloads() {
		med := map[string]modeRow{}
		for _, row := range r.rows(wl) {
			if row.hasCPURatio {
				med[row.mode] = row
			}
		}
		check := func(what, a, b string, slack float64) {
			x, okx := med[a]
			y, oky := med[b]
			g := goal{workload: wl, what: what}
			// A verdict needs the spread to allow one: quartiles that
			// overlap cannot refute the goal, and a traced mode whose median
			// is above 1 (cheaper than untraced) says the noise is larger
			// than the cost measured.
			overlap := okx && oky && x.cq1 <= y.cq3 && y.cq1 <= x.cq3
			noisy := okx && oky && (x.cmed > 1 || y.cmed > 1)
			nums := ""
			if okx && oky {
				nums = fmt.Sprintf("%s %.3f vs %s %.3f (Δ %+.3f, allowed −%.2f); quartiles %.3f–%.3f vs %.3f–%.3f",
					a, x.cmed, b, y.cmed, x.cmed-y.cmed, slack, x.cq1, x.cq3, y.cq1, y.cq3)
			}
			why := ""
			if a == "synq-serve" && b == "empty" {
				why = r.overFloor(wl, "synq-serve")
			}
			if a == "synq-top" && b == "synq-serve" && x.procPerOp() > 0 && y.procPerOp() > 0 {
				if u, ok := r.row(wl, "untraced"); ok && u.cpu > 0 {
					d := x.procPerOp() + x.progsPerOp() - y.procPerOp() - y.progsPerOp()
					why = fmt.Sprintf("; top's own process %.3f µs per operation vs serve's %.3f, their programs %.3f vs %.3f µs (bpf_stats): top costs %+.3f µs per operation more, %.4f of the %.1f µs an untraced operation costs",
						x.procPerOp(), y.procPerOp(), x.progsPerOp(), y.progsPerOp(), d, d/u.cpu, u.cpu)
				}
			}
			if a == "synq-trace" && b == "bpftrace" {
				if e, ok := med["empty"]; ok && e.cmed < y.cmed-slack {
					why = fmt.Sprintf("; why: the empty programs on synq's hooks alone are %.3f, behind bpftrace before any work (hooking accept(2) puts every syscall on the slow path; see empty-accept)", e.cmed)
				}
			}
			nums += why
			switch {
			case !okx || !oky:
				g.verdict = fmt.Sprintf("not measured (%s or %s missing)", a, b)
			case noisy:
				g.verdict = "undecided, noise above the cost (a median above 1: traced cheaper than untraced): " + nums
			case x.cmed >= y.cmed-slack:
				g.verdict = "met: " + nums
			case overlap:
				g.verdict = "undecided, quartiles overlap: " + nums
			default:
				g.verdict = "NOT met: " + nums
			}
			out = append(out, g)
		}
		check("serve within 0.01 of the empty floor", "synq-serve", "empty", 0.01)
		check("top within 0.02 of serve", "synq-top", "synq-serve", 0.02)
		check("trace --output json not behind bpftrace", "synq-trace", "bpftrace", 0)
	}
	return out
}

func (r *report) goalsMarkdown(w io.Writer) {
	fmt.Fprintf(w, "\n## Goals (issue 19)\n\nMedians of the paired ratios untraced/traced CPU per operation (1.0 = free), with their quartiles (the table per workload below has min and max): `synq serve` within 0.01 of the empty programs on the same hooks, `synq top` within 0.02 of `serve`, `synq trace --output json` not behind bpftrace's counting script. Each comparison is between modes measured in the same run, round by round; on a shared machine a difference of a few hundredths is inside the spread shown below.\n\n")
	fmt.Fprintf(w, "| workload | goal | verdict |\n|---|---|---|\n")
	for _, g := range r.goals() {
		fmt.Fprintf(w, "| %s | %s | %s |\n", g.workload, g.what, g.verdict)
	}
}

// workloadMarkdown writes one workload's overhead and kernel-time tables.
func (r *report) workloadMarkdown(w io.Writer, wl string) {
	rows := r.rows(wl)
	unit := "op"
	if wl == "churn" {
		unit = "conn"
	} else if len(rows) > 0 {
		unit = "req"
	}
	fmt.Fprintf(w, "\n## Overhead on `%s`\n\n%s.\n\n", wl, workloadDesc[wl])
	fmt.Fprintf(w, "*CPU per %[1]s* is the CPU time measured (see the top of the page) divided by the %[1]ss done: server, clients and the tracer's reader, and the softirqs the BPF programs run in; the ratio untraced/traced of it is the throughput kept when the CPUs are the limit, steadier than %[1]s/s (a stalled client or a neighbour VM makes the machine idle or stolen, not busy).\n\n", unit)
	fmt.Fprintf(w, "| mode | what runs | CPU µs/%[1]s (median) | untraced/traced CPU per %[1]s min / **median** / max | median %[1]s/s | traced/untraced %[1]s/s min / median / max | ListenOverflows | lost events |\n|---|---|---|---|---|---|---|---|\n", unit)
	for _, row := range rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %d | %d |\n", row.mode, modeDesc[row.mode], cpuCell(row), cpuRatioCell(row), connCell(row), ratioCell(row), row.overflows, row.lost)
	}
	for _, row := range rows {
		if len(row.errs) > 0 {
			fmt.Fprintf(w, "\n%s: %d of %d runs failed: `%s`\n", row.mode, len(row.errs), r.cfg.rounds, row.errs[0])
		}
	}
	var procs []string
	for _, row := range rows {
		if p := row.procPerOp(); p > 0 {
			procs = append(procs, fmt.Sprintf("%s %.3f", row.mode, p))
		}
	}
	if len(procs) > 0 {
		fmt.Fprintf(w, "\nThe tracer process's own CPU per %s, µs (its threads' run time over the runs, /proc/PID/task/*/schedstat; not its BPF programs, which run in the workload's tasks and softirqs): %s.\n", unit, strings.Join(procs, ", "))
	}
	fmt.Fprintf(w, "\nKernel time per program run on `%s`: run_time_ns / run_cnt summed over every traced run (`(*ebpf.Program).Stats()` in-process, `bpftool prog show` for other processes, only the programs that process holds). Runs/%s is how often the hook fires per operation, on every socket of the host. The `empty` rows are the floor of each hook: synq's own cost per run is its ns/run minus that.\n\n", wl, unit)
	fmt.Fprintf(w, "| mode | program | runs/%s | ns/run |\n|---|---|---|---|\n", unit)
	for _, row := range rows {
		for _, p := range progLines(row) {
			fmt.Fprintf(w, "| %s | %s | %s | %s |\n", row.mode, p[0], p[1], p[2])
		}
	}
}

// tpFloors pairs the tracepoint tier's programs with the empty programs on
// the same hooks.
var tpFloors = [][2]string{
	{"tp_data_ready", "tp_btf/sk_data_ready"},
	{"tp_destroy_sock", "tp_btf/tcp_destroy_sock"},
	{"tp_set_state", "tp_btf/inet_sock_set_state"},
	{"tp_exit_accept4", "tracepoint/sys_exit_accept4"},
	{"tp_kfree_skb", "tp_btf/kfree_skb"},
}

// row is a mode's row of a workload.
func (r *report) row(wl, mode string) (modeRow, bool) {
	for _, row := range r.rows(wl) {
		if row.mode == mode {
			return row, true
		}
	}
	return modeRow{}, false
}

// overFloor says what a mode's programs cost per operation above the empty
// programs on their hooks (bpf_stats, summed over the run), against what an
// untraced operation costs: the part of the gap to the floor that is the
// programs' own work.
func (r *report) overFloor(wl, mode string) string {
	rows := map[string]modeRow{}
	for _, row := range r.rows(wl) {
		rows[row.mode] = row
	}
	a, okA := rows[mode]
	e, okE := rows["empty"]
	u, okU := rows["untraced"]
	if !okA || !okE || !okU || a.conns == 0 || u.cpu == 0 {
		return ""
	}
	var ns float64
	var parts []string
	for _, p := range tpFloors {
		pa, pe := a.progs[p[0]], e.progs[p[1]]
		if pa.runs == 0 || pe.runs == 0 {
			continue
		}
		d := (pa.perRun() - pe.perRun()) * float64(pa.runs) / a.conns
		ns += d
		parts = append(parts, fmt.Sprintf("%s %.0f", p[0], d))
	}
	if len(parts) == 0 {
		return ""
	}
	return fmt.Sprintf("; why: %s's programs run %.2f µs per operation above the floor (bpf_stats: %s ns), %.3f of the %.1f µs an untraced operation costs",
		mode, ns/1000, strings.Join(parts, ", "), ns/1000/u.cpu, u.cpu)
}

// stateCost is one derived per-run cost: a program's ns/run in one mode
// minus another's (or an empty program's) on the same hook, over the same
// run of a workload.
type stateCost struct {
	what, mode, prog, baseMode, baseProg string
}

// stateCosts: what each piece of synq's in-kernel state costs per run, as
// the difference between two modes that differ by it alone.
var stateCosts = []stateCost{
	{"exact maxima (listener_max) at an enqueue", "tracer-top", "tp_data_ready", "tracer-serve-batched", "tp_data_ready"},
	{"exact maxima (listener_max, the acceptor) at an accept", "tracer-top", "tp_exit_accept4", "tracer-serve-batched", "tp_exit_accept4"},
	{"tp_destroy_sock (accept attribution), over its floor", "synq-serve", "tp_destroy_sock", "empty", "tp_btf/tcp_destroy_sock"},
	{"sk_data_ready as serve runs it, over its floor (every readable segment of every socket)", "synq-serve", "tp_data_ready", "empty", "tp_btf/sk_data_ready"},
	{"sk_data_ready as top runs it, over its floor", "synq-top", "tp_data_ready", "empty", "tp_btf/sk_data_ready"},
	{"inet_sock_set_state as serve runs it, over its floor", "synq-serve", "tp_set_state", "empty", "tp_btf/inet_sock_set_state"},
	{"the accept exit as serve runs it, over its floor", "synq-serve", "tp_exit_accept4", "empty", "tracepoint/sys_exit_accept4"},
}

func (r *report) costMarkdown(w io.Writer) {
	fmt.Fprintf(w, "\n## Per-run cost of synq's in-kernel state\n\nEach line is a program's ns/run in one mode minus the same hook's ns/run in a mode that differs by that state alone (or an empty program on the hook), summed over every round of the same run, with the runs per operation of the hook: cost per operation ≈ the two multiplied. Negative or tiny differences are noise (a few ns between modes is within the spread of one mode across rounds).\n\n")
	fmt.Fprintf(w, "| workload | state | mode − base | ns/run | base ns/run | Δ ns/run | runs/op |\n|---|---|---|---|---|---|---|\n")
	for _, wl := range r.workloads() {
		rows := map[string]modeRow{}
		for _, row := range r.rows(wl) {
			rows[row.mode] = row
		}
		for _, sc := range stateCosts {
			a, okA := rows[sc.mode]
			b, okB := rows[sc.baseMode]
			if !okA || !okB {
				continue
			}
			pa, pb := a.progs[sc.prog], b.progs[sc.baseProg]
			if pa.runs == 0 || pb.runs == 0 || a.conns == 0 {
				continue
			}
			fmt.Fprintf(w, "| %s | %s | %s − %s | %.0f | %.0f | %+.0f | %.2f |\n", wl, sc.what, sc.mode, sc.baseMode,
				pa.perRun(), pb.perRun(), pa.perRun()-pb.perRun(), float64(pa.runs)/a.conns)
		}
	}
}
