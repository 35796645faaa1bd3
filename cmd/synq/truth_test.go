package main

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/synq-trace/synq/internal/netlab"
)

// ssSkDrops is the listener's sk_drops as ss -tlm prints it (d<N>), read in
// the namespace.
func ssSkDrops(t *testing.T, ns *netlab.Netns, port uint16) uint64 {
	t.Helper()
	if _, err := exec.LookPath("ss"); err != nil {
		t.Skip("no ss(8) to read sk_drops with")
	}
	out, err := exec.Command("ip", "netns", "exec", ns.Name(), "ss", "-Htlmn", fmt.Sprintf("sport = :%d", port)).CombinedOutput()
	if err != nil {
		t.Fatalf("ss: %v: %s", err, out)
	}
	m := regexp.MustCompile(`,d(\d+)\)`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("no d<N> in ss -tlm output %q", out)
	}
	v, _ := strconv.ParseUint(m[1], 10, 64)
	return v
}

// Issue 14.1: the drops a snapshot shows are the socket's sk_drops, which
// the kernel bumps twice for a final ACK dropped on a full accept queue
// (tcp_listendrop, then tcp_v4_rcv's discard_and_relse) and once for
// ListenDrops: named SK-DROPS / sk_drops, with a footnote, never "DROPS"
// where a user would compare it with ListenDrops.
func TestListenersSkDropsPrivileged(t *testing.T) {
	ns, l := testListener(t, "synq-cli-skdrops", 1)
	c0, err := ns.Counters()
	if err != nil {
		t.Fatal(err)
	}
	// Delayed final ACKs find the accept queue full: ACK-side drops.
	res, err := ns.DialMany(context.Background(), l.Addr().String(), 8, 2500*time.Millisecond, netlab.DelayHandshakeACK())
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	res.Close()
	time.Sleep(200 * time.Millisecond)
	c1, err := ns.Counters()
	if err != nil {
		t.Fatal(err)
	}
	d := c1.Sub(c0)
	listenDrops := d["TcpExt.ListenDrops"]
	ss := ssSkDrops(t, ns, l.Port())
	rows := listenersJSON(t, "listeners", "--output", "json", "--netns", ns.Name(), "--port", fmt.Sprint(l.Port()))
	if len(rows) != 1 {
		t.Fatalf("%d rows for one listener: %v", len(rows), rows)
	}
	r := rows[0]
	t.Logf("kernel: ListenDrops %d, ListenOverflows %d; ss d%d; synq listeners %v", listenDrops, d["TcpExt.ListenOverflows"], ss, r)
	if listenDrops == 0 || ss <= listenDrops {
		t.Fatalf("ListenDrops %d, sk_drops %d: the test did not drop a final ACK on a full accept queue", listenDrops, ss)
	}
	if _, ok := r["drops"]; ok {
		t.Errorf("JSON still has \"drops\" (%v) for sk_drops: a user reads it as ListenDrops %d", r["drops"], listenDrops)
	}
	if v, ok := r["sk_drops"].(float64); !ok || uint64(v) != ss {
		t.Errorf("JSON sk_drops %v, ss says d%d", r["sk_drops"], ss)
	}

	code, stdout, stderr := runCLI("listeners", "--netns", ns.Name(), "--port", fmt.Sprint(l.Port()))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) < 4 || !strings.Contains(lines[0], "SK-DROPS*") || strings.Contains(lines[0], " DROPS") {
		t.Fatalf("text:\n%s", stdout)
	}
	col := strings.Index(lines[0], "SK-DROPS*")
	if got := strings.Fields(lines[1][col:])[0]; got != fmt.Sprint(ss) {
		t.Errorf("SK-DROPS %s, ss says d%d:\n%s", got, ss, stdout)
	}
	if note := lines[len(lines)-1]; !strings.HasPrefix(note, "* SK-DROPS") || !strings.Contains(note, "not ListenDrops") {
		t.Errorf("no footnote saying why SK-DROPS can exceed ListenDrops:\n%s", stdout)
	}
}
