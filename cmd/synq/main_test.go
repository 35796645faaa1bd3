package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/synq-trace/synq/internal/kerneltest"
	"github.com/synq-trace/synq/internal/netlab"
)

func runCLI(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = runWith(append([]string{"synq"}, args...), &o, &e)
	return code, o.String(), e.String()
}

// checkUsageLine checks a usage error: exit code 2 and one line "synq: ..."
// on stderr that says want.
func checkUsageLine(t *testing.T, code int, stderr, want string) {
	t.Helper()
	if code != 2 {
		t.Errorf("exit code %d, want 2 (stderr %q)", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "synq: ") || !strings.Contains(lines[0], want) {
		t.Errorf("stderr %q, want one line \"synq: ...%s...\"", stderr, want)
	}
}

// namedNetnsListen makes a private named netns for a kernel test (its name
// is prefix-pid) and a function that opens listeners on network in it.
func namedNetnsListen(t *testing.T, prefix, network string) (string, *netlab.Netns, func(addr string, backlog int, opts ...netlab.SockOpt) *netlab.Listener) {
	t.Helper()
	name := fmt.Sprintf("%s-%d", prefix, os.Getpid())
	ns := kerneltest.NamedNetns(t, name)
	return name, ns, func(addr string, backlog int, opts ...netlab.SockOpt) *netlab.Listener {
		return kerneltest.Listen(t, ns, network, addr, backlog, opts...)
	}
}

// Bad input: one line on stderr, exit code 2, checked before touching the
// kernel (so these run unprivileged too).
func TestBadInput(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"trace", "--port", "0"}, "invalid --port 0"},
		{[]string{"trace", "--port", "70000"}, "invalid --port 70000"},
		{[]string{"trace", "--port", "http"}, "--port: want an integer, got \"http\""},
		{[]string{"trace", "--events", "syn,bogus"}, "unknown event kind \"bogus\""},
		{[]string{"trace", "--tier", "uprobe"}, "unknown tier \"uprobe\""},
		{[]string{"trace", "--output", "yaml"}, "unknown output \"yaml\""},
		{[]string{"trace", "--duration", "soon"}, "--duration: want a duration like 10s, got \"soon\""},
		{[]string{"trace", "--duration", "-1s"}, "invalid --duration"},
		{[]string{"trace", "--reconcile", "10ms"}, "invalid --reconcile 10ms"},
		{[]string{"trace", "--reconcile", "often"}, "--reconcile: want a duration like 10s, got \"often\""},
		{[]string{"trace", "--netns", "no-such-netns"}, "netns \"no-such-netns\" does not exist"},
		{[]string{"trace", "--netns", "4294967295"}, "does not exist"},
		{[]string{"trace", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"trace", "extra"}, "takes no arguments"},
		{[]string{"listeners", "--output", "xml"}, "unknown output \"xml\""},
		{[]string{"listeners", "--netns", "/nonexistent/ns"}, "does not exist"},
		{[]string{"demo", "--duration", "0s"}, "invalid --duration"},
		{[]string{"no-such-command"}, "unknown command \"no-such-command\""},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			code, _, stderr := runCLI(c.args...)
			checkUsageLine(t, code, stderr, c.want)
		})
	}
}

func TestKernelNoBTF(t *testing.T) {
	kerneltest.Root(t)
	code, _, stderr := runCLI("trace", "--btf", filepath.Join(t.TempDir(), "missing"), "--duration", "1s")
	if code != 1 || !strings.Contains(stderr, "no kernel BTF") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Errorf("exit %d, stderr %q: want exit 1 and one line about missing BTF", code, stderr)
	}
}

// JSON lines carry the documented fields, with real values from a real
// listener in a private netns.
func TestKernelTraceJSON(t *testing.T) {
	ns, l := testListener(t, "synq-cli-test", 1)
	// A second listener accepts its connections after a known delay:
	// accept events with latency_ns.
	const acceptDelay = 200 * time.Millisecond
	srv := kerneltest.Listen(t, ns, "tcp4", "127.0.0.1:0", 16)
	// synq runs in its own process; the traffic starts once it has said it
	// attached (how long attaching takes depends on the machine's load) and
	// it is stopped with Ctrl-C once the traffic is over.
	start := time.Now()
	p := kerneltest.Start(t, kerneltest.Synq("trace --output json --netns synq-cli-test"))
	if !p.Attached(t, time.Minute) {
		t.Fatalf("synq exited before attaching: %v; stderr %q", p.Err(), p.Stderr.String())
	}
	overflowed := make(chan struct{})
	go func() {
		defer close(overflowed)
		res, err := ns.DialMany(context.Background(), l.Addr().String(), 6, 1500*time.Millisecond, netlab.DelayHandshakeACK())
		if err == nil {
			time.Sleep(500 * time.Millisecond)
			res.Close()
		}
	}()
	res, err := ns.DialMany(context.Background(), srv.Addr().String(), 2, 1500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(acceptDelay)
	for range 2 {
		c, err := srv.Accept()
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	res.Close()
	<-overflowed
	time.Sleep(500 * time.Millisecond) // the last events reach the reader
	if err := p.Cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	code := p.Wait(t, time.Minute)
	stdout, stderr := p.Stdout.String(), p.Stderr.String()
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, " tier on Linux ") {
		t.Errorf("stderr does not say which tier was picked: %q", stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	kinds := map[string]int{}
	reconciled, strictChecked := false, false
	for _, line := range lines {
		validateLine(t, "trace", []byte(line))
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("not JSON: %q: %v", line, err)
		}
		if _, ok := ev["kind"]; ok && !strictChecked {
			assertSchemaStrict(t, "trace", []byte(line), "kind")
			strictChecked = true
		}
		if _, ok := ev["reconcile"]; ok {
			// The reconciliation on exit: the last line.
			reconciled = true
			if !strings.Contains(line, `"counter":"ListenDrops"`) || !strings.Contains(line, fmt.Sprintf(`"netns":%d`, ns.Inode())) {
				t.Errorf("reconcile line %q lacks the test netns' ListenDrops row", line)
			}
			continue
		}
		for _, f := range []string{"time_ns", "kind", "netns", "addr", "port"} {
			if _, ok := ev[f]; !ok {
				t.Errorf("event %q lacks %s", line, f)
			}
		}
		if p := ev["port"].(float64); ev["netns"].(float64) != float64(ns.Inode()) || p != float64(l.Port()) && p != float64(srv.Port()) {
			t.Errorf("event %q is not from the test listeners (netns %d ports %d, %d)", line, ns.Inode(), l.Port(), srv.Port())
		}
		if ts := time.Unix(0, int64(ev["time_ns"].(float64))); ts.Before(start) || ts.After(time.Now()) {
			t.Errorf("event %q: time_ns %v is not during the run (from %v)", line, ts, start)
		}
		k := ev["kind"].(string)
		kinds[k]++
		if k == "accept" {
			lat, ok := ev["latency_ns"].(float64)
			if !ok || time.Duration(lat) < acceptDelay || time.Duration(lat) > acceptDelay+time.Second {
				t.Errorf("accept event %q: latency_ns %v, want about %v", line, ev["latency_ns"], acceptDelay)
			}
			if ev["pid"].(float64) != float64(os.Getpid()) || ev["comm"] == "" {
				t.Errorf("accept event %q: want pid %d and a comm", line, os.Getpid())
			}
		} else if _, ok := ev["latency_ns"]; ok {
			t.Errorf("%s event %q has latency_ns", k, line)
		}
		if k == "enqueue" || k == "ack-overflow" {
			for _, f := range []string{"accept_queue_len", "accept_queue_max", "syn_queue_len"} {
				if _, ok := ev[f]; !ok {
					t.Errorf("%s event %q lacks %s", k, line, f)
				}
			}
			if backlog := map[float64]float64{float64(l.Port()): 1, float64(srv.Port()): 16}[ev["port"].(float64)]; ev["accept_queue_max"].(float64) != backlog {
				t.Errorf("accept_queue_max %v, the listener's backlog is %v", ev["accept_queue_max"], backlog)
			}
		}
	}
	if !reconciled || !strings.HasPrefix(lines[len(lines)-1], `{"reconcile":`) {
		t.Errorf("no {\"reconcile\": ...} object as the last line of stdout")
	}
	if kinds["enqueue"] == 0 || kinds["ack-overflow"] == 0 || kinds["accept"] != 2 {
		t.Errorf("events by kind %v: want enqueue, ack-overflow and 2 accept", kinds)
	}
	if !strings.Contains(stderr, "lost 0") {
		t.Errorf("summary line missing or records lost: %q", stderr)
	}
	// The summary on exit counts the events printed, by kind.
	for _, k := range []string{"enqueue", "ack-overflow", "accept"} {
		if want := fmt.Sprintf("%s=%d", k, kinds[k]); !strings.Contains(stderr, " "+want) && !strings.Contains(stderr, "("+want) {
			t.Errorf("summary line lacks %q: %q", want, stderr)
		}
	}
}

// listeners: one JSON object per listener with the documented fields; an
// overflowed listener shows len > max and at least the netns' ListenDrops in
// drops (each ListenDrops bumps the listener's sk_drops once); --port
// filters.
func TestKernelListenersJSON(t *testing.T) {
	ns := kerneltest.NamedNetns(t, "synq-cli-ls")
	l := kerneltest.Listen(t, ns, "tcp6", "[::1]:0", 7)
	full := kerneltest.Listen(t, ns, "tcp4", "127.0.0.1:0", 1)
	res, err := ns.DialMany(context.Background(), full.Addr().String(), 6, 1500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	if err := full.WaitQueue(2, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	listenDrops := func() uint64 {
		c, err := ns.Counters()
		if err != nil {
			t.Fatal(err)
		}
		return c["TcpExt.ListenDrops"]
	}
	drops0 := listenDrops()
	rows := listenersJSON(t, "listeners", "--output", "json", "--netns", "synq-cli-ls")
	drops1 := listenDrops()
	if len(rows) != 2 {
		t.Fatalf("%d listeners in a netns with two: %v", len(rows), rows)
	}
	for _, r := range rows {
		for _, f := range []string{"netns", "netns_name", "addr", "port", "accept_queue_len", "accept_queue_max", "syn_queue_len", "syn_queue_max", "sk_drops", "uid", "inode", "owners"} {
			if _, ok := r[f]; !ok {
				t.Errorf("row %v lacks %s", r, f)
			}
		}
		if r["netns"].(float64) != float64(ns.Inode()) || r["netns_name"] != "synq-cli-ls" {
			t.Errorf("row %v is not in netns synq-cli-ls (%d)", r, ns.Inode())
		}
		owners, _ := r["owners"].([]any)
		if len(owners) == 0 || owners[0].(map[string]any)["pid"].(float64) != float64(os.Getpid()) {
			t.Errorf("owners %v, want this test process %d", r["owners"], os.Getpid())
		}
	}
	// Sorted by port within a netns.
	r, o := rows[0], rows[1]
	if r["port"].(float64) != float64(l.Port()) {
		r, o = o, r
	}
	if r["port"].(float64) != float64(l.Port()) || r["addr"] != "::1" || r["accept_queue_max"].(float64) != 7 ||
		r["accept_queue_len"].(float64) != 0 || r["sk_drops"].(float64) != 0 {
		t.Errorf("row %v does not describe an idle [::1]:%d backlog 7", r, l.Port())
	}
	t.Logf("overflowed listener: %v; netns ListenDrops %d..%d", o, drops0, drops1)
	if o["port"].(float64) != float64(full.Port()) || o["addr"] != "127.0.0.1" || o["accept_queue_max"].(float64) != 1 ||
		o["accept_queue_len"].(float64) <= o["accept_queue_max"].(float64) {
		t.Errorf("row %v does not describe 127.0.0.1:%d backlog 1 overflowed (len > max)", o, full.Port())
	}
	if d := o["sk_drops"].(float64); drops0 == 0 || d < float64(drops0) || d > float64(drops1)*2 {
		t.Errorf("sk_drops %v, the netns counted ListenDrops %d..%d: want at least that, at most twice (ACK-side drops count twice in sk_drops)", d, drops0, drops1)
	}

	only := listenersJSON(t, "listeners", "--output", "json", "--netns", "synq-cli-ls", "--port", fmt.Sprint(full.Port()))
	if len(only) != 1 || only[0]["port"].(float64) != float64(full.Port()) {
		t.Errorf("--port %d: rows %v", full.Port(), only)
	}
}

func listenersJSON(t *testing.T, args ...string) []map[string]any {
	t.Helper()
	code, stdout, stderr := runCLI(args...)
	if code != 0 {
		t.Fatalf("synq %v: exit %d: %s", args, code, stderr)
	}
	var rows []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		validateLine(t, "listeners", []byte(line))
		assertSchemaStrict(t, "listeners", []byte(line), "owners")
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("not JSON: %q", line)
		}
		rows = append(rows, r)
	}
	return rows
}

// --reconcile prints the table periodically while tracing and once more on
// exit; the exit table agrees with the kernel's counters for what the tier
// claims (ListenDrops is claimed by every tier on this machine's 6.18).
func TestKernelTraceReconcilePeriodic(t *testing.T) {
	ns, l := testListener(t, "synq-cli-test-reconcile", 1)
	before, err := ns.Counters()
	if err != nil {
		t.Fatal(err)
	}
	// synq in its own process: the traffic starts once it has attached
	// (attaching takes longer on a loaded machine), Ctrl-C ends it after
	// more than three --reconcile periods.
	p := kerneltest.Start(t, kerneltest.Synq("trace --netns synq-cli-test-reconcile --reconcile 1s"))
	if !p.Attached(t, time.Minute) {
		t.Fatalf("synq exited before attaching: %v; stderr %q", p.Err(), p.Stderr.String())
	}
	attached := time.Now()
	res, err := ns.DialMany(context.Background(), l.Addr().String(), 6, 1500*time.Millisecond, netlab.DelayHandshakeACK())
	if err == nil {
		time.Sleep(500 * time.Millisecond)
		res.Close()
	}
	time.Sleep(time.Until(attached.Add(3500 * time.Millisecond)))
	if err := p.Cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	code, stderr := p.Wait(t, time.Minute), p.Stderr.String()
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	after, err := ns.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(stderr, "synq: reconcile after "); n < 3 {
		t.Errorf("%d periodic reconcile tables in 3.5s at --reconcile 1s, want at least 3:\n%s", n, stderr)
	}
	_, exit, ok := strings.Cut(stderr, "synq: reconcile on exit, after ")
	if !ok {
		t.Fatalf("no reconcile table on exit:\n%s", stderr)
	}
	if !strings.Contains(exit, "netns synq-cli-test-reconcile (net:[") {
		t.Errorf("exit table does not name the netns:\n%s", exit)
	}
	kernel := after["TcpExt.ListenDrops"] - before["TcpExt.ListenDrops"]
	if kernel == 0 {
		t.Fatalf("the kernel counted no ListenDrops: the scenario did not happen")
	}
	var row []string
	for _, line := range strings.Split(exit, "\n") {
		if f := strings.Fields(line); len(f) >= 4 && f[0] == "ListenDrops" {
			row = f
			break
		}
	}
	switch {
	case row == nil:
		t.Errorf("exit table has no ListenDrops row:\n%s", exit)
	case strings.HasPrefix(row[3], "("):
		// Tracepoint tier before 6.11: approximated, not claimed.
		if row[1] != strconv.FormatUint(kernel, 10) {
			t.Errorf("ListenDrops row %q, kernel counted %d", row, kernel)
		}
		t.Logf("ListenDrops not claimed by this tier: %q", row)
	default:
		if want := fmt.Sprintf("ListenDrops %d %d 100%%", kernel, kernel); strings.Join(row[:4], " ") != want {
			t.Errorf("exit row %q, want %q:\n%s", row, want, exit)
		}
	}
}

// testListener is a fresh named netns (one left by a killed run is deleted
// first) with a listener on 127.0.0.1 of this backlog; both close when the
// test ends. Skips unless root.
func testListener(t *testing.T, nsName string, backlog int) (*netlab.Netns, *netlab.Listener) {
	t.Helper()
	ns := kerneltest.NamedNetns(t, nsName)
	return ns, kerneltest.Listen(t, ns, "tcp4", "127.0.0.1:0", backlog)
}

// connected dials ln (from the calling thread's netns) and accepts: both
// ends of one connection.
func connected(ln net.Listener) (client, server net.Conn, err error) {
	client, err = net.Dial(ln.Addr().Network(), ln.Addr().String())
	if err != nil {
		return nil, nil, err
	}
	server, err = ln.Accept()
	if err != nil {
		client.Close()
		return nil, nil, err
	}
	return client, server, nil
}
