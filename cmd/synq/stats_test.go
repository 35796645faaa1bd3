package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/synq-trace/synq/internal/kerneltest"
	"github.com/synq-trace/synq/internal/netns"
	"github.com/synq-trace/synq/internal/netstat"
	"github.com/synq-trace/synq/internal/render"
)

// runCommand runs one command in an app of its own, wired like newApp
// (usage errors exit 2), so these tests do not depend on registration.
func runCommand(cmd *cli.Command, args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	app := &cli.App{
		Name:     "synq",
		Commands: []*cli.Command{cmd},
		Writer:   &o, ErrWriter: &e,
		OnUsageError: func(c *cli.Context, err error, _ bool) error { return usageErr(flagValueErr(c.App, err)) },
	}
	cmd.OnUsageError = app.OnUsageError
	if err := app.RunContext(context.Background(), append([]string{"synq", cmd.Name}, args...)); err != nil {
		e.WriteString("synq: " + err.Error() + "\n")
		return exitCode(err), o.String(), e.String()
	}
	return 0, o.String(), e.String()
}

func checkUsage(t *testing.T, cmd func() *cli.Command, cases map[string]string) {
	t.Helper()
	for args, want := range cases {
		t.Run(args, func(t *testing.T) {
			code, _, stderr := runCommand(cmd(), strings.Fields(args)...)
			if code != 2 {
				t.Errorf("exit code %d, want 2 (stderr %q)", code, stderr)
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], want) {
				t.Errorf("stderr %q, want one line containing %q", stderr, want)
			}
		})
	}
}

func TestStatsBadInput(t *testing.T) {
	checkUsage(t, statsCommand, map[string]string{
		"--output yaml":              `unknown output "yaml"`,
		"--interval 0s":              "invalid --interval 0s",
		"--interval -1s":             "invalid --interval -1s",
		"--interval soon":            `--interval: want a duration like 10s, got "soon"`,
		"--count -1 --interval 1s":   "invalid --count -1",
		"--count 2":                  "--count needs --interval",
		"--all ListenOverflows":      "--all-counters takes no counter names",
		"NoSuchCounter":              `unknown counter "NoSuchCounter"`,
		"InReceives":                 `counter "InReceives" is ambiguous: Ip.InReceives, Ip6.InReceives`,
		"--netns synq-no-such-netns": `netns "synq-no-such-netns" does not exist`,
		"--bogus":                    "flag provided but not defined",
	})
}

func TestStatsText(t *testing.T) {
	code, out, stderr := runCommand(statsCommand())
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		"COUNTER", "MEANING (netstat -s)",
		"TcpExt.ListenOverflows", "node_netstat_TcpExt_ListenOverflows", "times the listen queue of a socket overflowed",
		"Tcp.PassiveOpens", "passive connection openings",
		"[synq] SYNs dropped because the SYN queue was full and SYN cookies are off",
		"node_netstat_TcpExt_TCPReqQFullDrop *",
		"* not in node_exporter's default --collector.netstat.fields",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	// Named counters in any spelling, one this kernel lacks.
	code, out, stderr = runCommand(statsCommand(), "TCPPrequeued", "node_netstat_Tcp_RetransSegs", "tcpextlistendrops")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 6 { // header, column names, three counters, footnote
		t.Fatalf("got %d lines:\n%s", len(lines), out)
	}
	if f := strings.Fields(lines[2]); f[0] != "TcpExt.TCPPrequeued" || !strings.Contains(lines[2], "not on this kernel") {
		t.Errorf("absent counter line %q", lines[2])
	}
	if !strings.HasPrefix(lines[3], "Tcp.RetransSegs") || !strings.HasPrefix(lines[4], "TcpExt.ListenDrops") {
		t.Errorf("counters out of argument order:\n%s", out)
	}
}

// TestStatsAllCounters: --all-counters lists every counter; --all, its
// former name, still does (hidden), and the help names only the new one so
// it cannot be read as states' --all-netns.
func TestStatsAllCounters(t *testing.T) {
	for _, flag := range []string{"--all-counters", "--all"} {
		code, out, stderr := runCommand(statsCommand(), flag)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", flag, code, stderr)
		}
		var prequeue, migrate bool
		for _, l := range strings.Split(out, "\n") {
			f := strings.Fields(l)
			if len(f) < 2 {
				continue
			}
			switch f[0] {
			case "TcpExt.TCPPrequeued":
				prequeue = strings.Contains(l, "not on this kernel")
			case "TcpExt.TCPMigrateReqFailure":
				_, err := strconv.ParseInt(f[1], 10, 64)
				migrate = err == nil
			}
		}
		if !prequeue || !migrate {
			t.Errorf("%s: TCPPrequeued listed absent %v, TCPMigrateReqFailure with a value %v", flag, prequeue, migrate)
		}
	}
	code, out, stderr := runCommand(statsCommand(), "--all-counters", "ListenDrops")
	if code != 2 || !strings.Contains(stderr, "--all-counters takes no counter names") {
		t.Errorf("--all-counters with a name: exit %d, %q %q", code, out, stderr)
	}
	code, out, _ = runCommand(statsCommand(), "--help")
	if code != 0 || !strings.Contains(out, "--all-counters") || strings.Contains(out, "--all ") {
		t.Errorf("stats --help: exit %d, want --all-counters and no --all:\n%s", code, out)
	}
}

func TestStatsJSONInterval(t *testing.T) {
	code, out, stderr := runCommand(statsCommand(), "--output", "json", "--interval", "100ms", "--count", "2",
		"Tcp.InSegs", "Tcp.CurrEstab", "TcpExt.TCPDirectCopyFromBacklog")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 JSON lines, got:\n%s", out)
	}
	cur, err := netns.Current()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lines {
		validateLine(t, "stats", []byte(l))
		var r render.StatsReport
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		if r.Netns != cur.Inode || r.TimeNs == 0 || r.IntervalNs <= 0 || len(r.Counters) != 3 {
			t.Fatalf("report %s", l)
		}
		in, est, gone := r.Counters[0], r.Counters[1], r.Counters[2]
		if !in.Present || in.Value == nil || in.RatePerSec == nil || in.Delta == nil || in.MeaningSource != "net-tools" || in.NodeExporter != "node_netstat_Tcp_InSegs" {
			t.Errorf("Tcp.InSegs = %+v", in)
		}
		if !est.Gauge || est.RatePerSec != nil || est.Value == nil {
			t.Errorf("Tcp.CurrEstab (gauge) = %+v", est)
		}
		if gone.Present || gone.Value != nil || gone.RatePerSec != nil {
			t.Errorf("absent counter = %+v", gone)
		}
	}
	// Absent values are null, not 0.
	if !strings.Contains(lines[0], `"name":"TcpExt.TCPDirectCopyFromBacklog","present":false,"value":null`) {
		t.Errorf("absent counter not null: %s", lines[0])
	}
}

func TestKernelStatsNetns(t *testing.T) {
	ns := kerneltest.NS(t)
	err := ns.Do(func() error {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer ln.Close()
		c, s, err := connected(ln)
		if err == nil {
			s.Close()
			c.Close()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runCommand(statsCommand(), "--netns", ns.Name, "--output", "json", "ActiveOpens", "PassiveOpens")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	validateLines(t, "stats", out)
	assertSchemaStrict(t, "stats", []byte(strings.TrimSpace(out)), "counters")
	var r render.StatsReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.Netns != ns.Inode || r.NetnsName != ns.Name {
		t.Errorf("netns %d %q, want %d %q", r.Netns, r.NetnsName, ns.Inode, ns.Name)
	}
	for _, c := range r.Counters {
		if c.Value == nil || *c.Value != 1 {
			t.Errorf("%s in the private netns = %v, want 1", c.Name, c.Value)
		}
	}
	// By inode too.
	code, _, stderr = runCommand(statsCommand(), "--netns", strconv.FormatUint(ns.Inode, 10), "Tcp.ActiveOpens")
	if code != 0 {
		t.Errorf("--netns by inode: exit %d: %s", code, stderr)
	}
}

// Rates come from the deltas of two reads over the time between them;
// gauges and counters the kernel lacks get none.
func TestStatsReportRates(t *testing.T) {
	prev := netstat.Snapshot{"TcpExt.ListenDrops": 100, "Tcp.CurrEstab": 7, "Tcp.InSegs": 5000}
	cur := netstat.Snapshot{"TcpExt.ListenDrops": 130, "Tcp.CurrEstab": 9, "Tcp.InSegs": 5000}
	names := []string{"TcpExt.ListenDrops", "Tcp.CurrEstab", "Tcp.InSegs", "TcpExt.TCPPrequeued"}
	r := render.NewStatsReport(netns.NS{Inode: 1}, time.Unix(100, 0), 2*time.Second, names, cur, prev)
	drops, estab, segs, gone := r.Counters[0], r.Counters[1], r.Counters[2], r.Counters[3]
	if drops.Delta == nil || *drops.Delta != 30 || drops.RatePerSec == nil || *drops.RatePerSec != 15 || *drops.Value != 130 {
		t.Errorf("ListenDrops %+v: want value 130, delta 30, rate 15/s", drops)
	}
	if !estab.Gauge || estab.Delta != nil || estab.RatePerSec != nil || *estab.Value != 9 {
		t.Errorf("CurrEstab (gauge) %+v: want value 9 and no rate", estab)
	}
	if segs.Delta == nil || *segs.Delta != 0 || *segs.RatePerSec != 0 {
		t.Errorf("InSegs %+v: want delta 0, rate 0", segs)
	}
	if gone.Present || gone.Value != nil || gone.Delta != nil {
		t.Errorf("TCPPrequeued %+v: want absent", gone)
	}
	var b bytes.Buffer
	if err := render.WriteStats(&b, render.Text, r); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if !strings.Contains(out, "rates over 2s") {
		t.Errorf("header does not give the interval:\n%s", out)
	}
	// COUNTER VALUE DELTA RATE/S, as fields.
	for _, want := range []string{
		"COUNTER VALUE DELTA RATE/S",
		"TcpExt.ListenDrops 130 30 15.0",
		"Tcp.CurrEstab 9 gauge -",
		"Tcp.InSegs 5000 0 0.0",
		"TcpExt.TCPPrequeued not on this kernel - -",
	} {
		found := false
		for _, l := range strings.Split(out, "\n") {
			found = found || strings.HasPrefix(strings.Join(strings.Fields(l), " "), want+" ")
		}
		if !found {
			t.Errorf("no line starting %q:\n%s", want, out)
		}
	}
}

// The captures of older kernels (testdata/procfs/<series>, from the test
// VMs): a counter added later is "not on this kernel" there, not 0.
func TestStatsReportCaptures(t *testing.T) {
	for series, migrate := range map[string]bool{"5.10": false, "6.1": true, "6.12": true, "7.2": true} {
		t.Run(series, func(t *testing.T) {
			s, err := netstat.Read(filepath.Join("../../testdata/procfs", series))
			if err != nil {
				t.Fatal(err)
			}
			// TCPMigrateReqFailure came with SO_REUSEPORT request migration in 5.14.
			names := append(slices.Clone(netstat.DefaultSet), "TcpExt.TCPMigrateReqFailure", "TcpExt.TCPPrequeued")
			r := render.NewStatsReport(netns.NS{Inode: 1}, time.Unix(100, 0), 0, names, s, nil)
			var b bytes.Buffer
			if err := render.WriteStats(&b, render.Text, r); err != nil {
				t.Fatal(err)
			}
			for _, c := range r.Counters {
				want := c.Name != "TcpExt.TCPPrequeued" && (c.Name != "TcpExt.TCPMigrateReqFailure" || migrate)
				if c.Present != want || (c.Value != nil) != want {
					t.Errorf("%s: present %v, want %v", c.Name, c.Present, want)
				}
				line := ""
				for _, l := range strings.Split(b.String(), "\n") {
					if strings.HasPrefix(l, c.Name+" ") {
						line = l
					}
				}
				if strings.Contains(line, "not on this kernel") == want {
					t.Errorf("%s: line %q", c.Name, line)
				}
			}
		})
	}
}

// --interval against real traffic: the delta of the interval in which a
// private netns made 3 connections is 3.
func TestKernelStatsInterval(t *testing.T) {
	ns := kerneltest.NS(t)
	type result struct {
		code        int
		out, stderr string
	}
	done := make(chan result, 1)
	go func() {
		code, out, stderr := runCommand(statsCommand(), "--netns", ns.Name, "--output", "json",
			"--interval", "1s", "--count", "1", "Tcp.PassiveOpens", "Tcp.ActiveOpens", "Tcp.CurrEstab")
		done <- result{code, out, stderr}
	}()
	time.Sleep(300 * time.Millisecond) // after the first read, well before the tick
	const conns = 3
	err := ns.Do(func() error {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer ln.Close()
		for range conns {
			c, s, err := connected(ln)
			if err != nil {
				return err
			}
			s.Close()
			c.Close()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	res := <-done
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	validateLines(t, "stats", res.out)
	var r render.StatsReport
	if err := json.Unmarshal([]byte(res.out), &r); err != nil {
		t.Fatal(err)
	}
	if r.IntervalNs < int64(time.Second) || r.IntervalNs > int64(2*time.Second) {
		t.Fatalf("interval %v, want about 1s", time.Duration(r.IntervalNs))
	}
	for _, c := range r.Counters[:2] {
		rate := float64(conns) / time.Duration(r.IntervalNs).Seconds()
		if c.Delta == nil || *c.Delta != conns || c.RatePerSec == nil || *c.RatePerSec != rate {
			t.Errorf("%s: delta %v rate %v, want %d and %.3f/s", c.Name, c.Delta, c.RatePerSec, conns, rate)
		}
	}
	if est := r.Counters[2]; !est.Gauge || est.Delta != nil {
		t.Errorf("Tcp.CurrEstab %+v: a gauge has no delta", est)
	}
}
