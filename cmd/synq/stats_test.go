package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/synq-trace/synq/internal/netns"
	"github.com/synq-trace/synq/internal/netns/netnstest"
)

// runCommand runs one command in an app of its own, wired like newApp
// (usage errors exit 2), so these tests do not depend on registration.
func runCommand(cmd *cli.Command, args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	app := &cli.App{
		Name:     "synq",
		Commands: []*cli.Command{cmd},
		Writer:   &o, ErrWriter: &e,
		OnUsageError: func(_ *cli.Context, err error, _ bool) error { return usageErr(err) },
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
		"--interval soon":            `invalid value "soon"`,
		"--count -1 --interval 1s":   "invalid --count -1",
		"--count 2":                  "--count needs --interval",
		"--all ListenOverflows":      "--all takes no counter names",
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

func TestStatsAll(t *testing.T) {
	code, out, stderr := runCommand(statsCommand(), "--all")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
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
		t.Errorf("--all: TCPPrequeued listed absent %v, TCPMigrateReqFailure with a value %v", prequeue, migrate)
	}
}

func TestStatsJSONInterval(t *testing.T) {
	code, out, stderr := runCommand(statsCommand(), "--output", "json", "--interval", "50ms", "--count", "2",
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
		var r statsReport
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

func TestStatsNetnsPrivileged(t *testing.T) {
	ns := netnstest.New(t)
	err := ns.Do(func() error {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer ln.Close()
		c, err := net.Dial("tcp4", ln.Addr().String())
		if err != nil {
			return err
		}
		defer c.Close()
		s, err := ln.Accept()
		if err == nil {
			s.Close()
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
	var r statsReport
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
