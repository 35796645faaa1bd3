package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/synq-trace/synq/internal/aggregate"
	"github.com/synq-trace/synq/internal/hist"
	"github.com/synq-trace/synq/internal/kerneltest"
	"github.com/synq-trace/synq/internal/netlab"
	"github.com/synq-trace/synq/internal/render"
	"github.com/synq-trace/synq/tracer"
)

func TestLatencyBadInput(t *testing.T) {
	checkUsage(t, latencyCommand, map[string]string{
		"--by pid":           `unknown grouping "pid"`,
		"--duration -1s":     "invalid --duration",
		"--port 70000":       "invalid --port 70000",
		"--output xml":       `unknown output "xml"`,
		"--netns no-such-ns": `netns "no-such-ns" does not exist`,
		"extra":              "latency takes no arguments",
		"--sample 0":         "invalid --sample 0",
	})
}

// The bcc-style text of one group, without a kernel.
func TestLatencyText(t *testing.T) {
	agg := aggregate.NewLatency(aggregate.ByListener)
	ep := tracer.Endpoint{Netns: 7, Addr: netip.MustParseAddr("127.0.0.1"), Port: 8080}
	for _, l := range []time.Duration{90 * time.Microsecond, 100 * time.Microsecond, 120 * time.Microsecond, 3 * time.Millisecond} {
		agg.Observe(&tracer.Event{Kind: tracer.KindAccept, Listener: 1, Endpoint: ep, LatencyKnown: true, Latency: l})
	}
	agg.Observe(&tracer.Event{Kind: tracer.KindAccept, Listener: 1, Endpoint: ep})
	for _, d := range []uint32{1, 2, 9} {
		agg.Observe(&tracer.Event{Kind: tracer.KindEnqueue, Listener: 1, Endpoint: ep, QueueKnown: true, AcceptQueueLen: d, AcceptQueueMax: 8})
	}
	// p50 is the 2nd of 4, 100µs, reported as the midpoint of its
	// histogram bucket [99.84µs, 100.35µs): within 1/256.
	var b bytes.Buffer
	gs := agg.Groups(map[tracer.ListenerID][]aggregate.Owner{1: {{PID: 5, Comm: "srv"}}}, map[uint32]string{7: "demo"})
	if err := render.WriteLatencyText(&b, gs, aggregate.ByListener); err != nil {
		t.Fatal(err)
	}
	want := `127.0.0.1:8080  netns 7 (demo)  owner 5/srv
accept latency: 4 accepts  p50 100.1µs  p90 3.00ms  p99 3.00ms  max 3.00ms (+1 enqueued before synq started)
     usecs               : count    distribution
        64 -> 127        : 3        |****************************************|
       128 -> 255        : 0        |                                        |
       256 -> 511        : 0        |                                        |
       512 -> 1023       : 0        |                                        |
      1024 -> 2047       : 0        |                                        |
      2048 -> 4095       : 1        |*************                           |

accept queue depth at enqueue (backlog 8): 3 enqueues  p50 2  p90 9  p99 9  max 9
     depth               : count    distribution
         0 -> 1          : 1        |****************************************|
         2 -> 3          : 1        |****************************************|
         4 -> 7          : 0        |                                        |
         8 -> 15         : 1        |****************************************|
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

func parseLatency(t *testing.T, out string) []render.LatencyGroupJSON {
	t.Helper()
	var rs []render.LatencyGroupJSON
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		validateLine(t, "latency", []byte(l))
		assertSchemaStrict(t, "latency", []byte(l), "max_ns")
		var r render.LatencyGroupJSON
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("not JSON: %q: %v", l, err)
		}
		rs = append(rs, r)
	}
	return rs
}

// `latency --output json` by listener (with the stream sampled 1 in 100000)
// and by port over a listener accepted after known delays and an
// SO_REUSEPORT pair, in a private netns.
func TestKernelLatencyJSON(t *testing.T) {
	kerneltest.Root(t)
	name, ns, listen := namedNetnsListen(t, "synq-lat", "tcp4")
	slow := listen("127.0.0.1:0", 16)
	rp1 := listen("127.0.0.1:0", 32, netlab.ReusePort())
	rp2 := listen(rp1.String(), 32, netlab.ReusePort())

	// One command at a time: urfave/cli flags are package-level values
	// that a run writes to.
	// Sampled down to (almost) nothing: the numbers come from the
	// kernel's histograms, the listeners from the snapshot.
	byListener := startSynq("latency", "--duration", "2500ms", "--netns", name, "--output", "json", "--sample", "100000")
	byListener.attached(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	wg.Go(func() {
		res, err := ns.DialMany(context.Background(), slow.String(), 5, time.Second)
		if err != nil {
			errs <- err
			return
		}
		t.Cleanup(func() { res.Close() })
		if err := slow.WaitQueue(5, time.Second); err != nil {
			errs <- err
			return
		}
		s := netlab.Serve(slow, netlab.ServerConfig{Delay: 100 * time.Millisecond, Keep: true})
		t.Cleanup(s.Stop)
		if !s.WaitAccepts(5, 2*time.Second) {
			errs <- fmt.Errorf("slow listener accepted %d of 5", s.Accepts())
		}
	})
	wg.Go(func() { errs <- reusePortLoad(ns, rp1, rp2) })
	wg.Wait()
	byListener.wait(t, 10*time.Second)
	byPort := startSynq("latency", "--duration", "1s", "--netns", name, "--output", "json", "--by", "port")
	byPort.attached(t)
	wg.Go(func() { errs <- reusePortLoad(ns, rp1, rp2) })
	wg.Wait()
	byPort.wait(t, 10*time.Second)
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("by listener:\n%s%s\nby port:\n%s", byListener.stdout, byListener.stderr, byPort.stdout)

	eps := hist.New().RelativeError()
	near := func(v *int64, lo, hi time.Duration) bool {
		return v != nil && float64(*v) >= float64(lo)*(1-eps) && time.Duration(*v) <= hi
	}
	rows := parseLatency(t, byListener.stdout.String())
	var slowRow *render.LatencyGroupJSON
	var members []render.LatencyGroupJSON
	for i, r := range rows {
		if r.Netns != uint32(ns.Inode()) || r.NetnsName != name {
			t.Errorf("row from netns %d %q, want %d %q", r.Netns, r.NetnsName, ns.Inode(), name)
		}
		switch r.Port {
		case slow.Port():
			slowRow = &rows[i]
		case rp1.Port():
			members = append(members, r)
		default:
			t.Errorf("row for unknown port %d", r.Port)
		}
	}
	if slowRow == nil {
		t.Fatalf("no row for the slow listener :%d", slow.Port())
	}
	// Accepted after 100, 200, ..., 500 ms: nearest-rank p50 = 300 ms,
	// p90 = p99 = max = 500 ms (5 values).
	r := slowRow
	if r.Accepts != 5 || r.AcceptsUnknownLatency != 0 || r.Addr != "127.0.0.1" || r.Listeners != 1 ||
		!near(r.P50Ns, 300*time.Millisecond, 400*time.Millisecond) || !near(r.MaxNs, 500*time.Millisecond, 650*time.Millisecond) ||
		*r.P90Ns != *r.MaxNs || *r.P99Ns != *r.MaxNs {
		t.Errorf("slow listener: %d accepts, p50 %v p90 %v p99 %v max %v; want 5, 300ms, 500ms ×3",
			r.Accepts, nsDuration(r.P50Ns), nsDuration(r.P90Ns), nsDuration(r.P99Ns), nsDuration(r.MaxNs))
	}
	var inBuckets uint64
	for _, b := range r.Buckets {
		inBuckets += b.Count
		if b.FromNs > b.ToNs {
			t.Errorf("bucket %+v", b)
		}
	}
	// 100-500 ms = 100000-500000 µs: slots 65536-131071 .. 262144-524287 µs
	// (in ns, as every duration in the JSON), the last one the exact max's
	// (past 524 ms when the dials were slow).
	if inBuckets != 5 || len(r.Buckets) == 0 || r.Buckets[0].FromNs != 65536000 || r.MaxNs == nil ||
		uint64(*r.MaxNs) < r.Buckets[len(r.Buckets)-1].FromNs || uint64(*r.MaxNs) > r.Buckets[len(r.Buckets)-1].ToNs {
		t.Errorf("slow listener buckets %+v, max %v", r.Buckets, nsDuration(r.MaxNs))
	}
	if len(r.Owners) == 0 || r.Owners[0].PID != os.Getpid() {
		t.Errorf("owners %+v, want this test (pid %d)", r.Owners, os.Getpid())
	}
	d := r.AcceptQueueDepth
	// Each enqueue sees the queue with the new child: 1..5 (two CPUs may
	// read the same length when their children land together).
	if (kernelHasQueueDepths(byListener.stderr.String())) &&
		(d.Enqueues != 5 || d.Backlog != 16 || d.Max == nil || *d.Max != 5 || *d.P50 < 1 || *d.P50 > 5) {
		t.Errorf("slow listener accept queue depth %+v", d)
	}

	// SO_REUSEPORT: two sockets, two rows by listener, one by port.
	if len(members) != 2 || members[0].Accepts+members[1].Accepts != 16 || members[0].Listeners != 1 {
		t.Errorf("SO_REUSEPORT members by listener: %+v", members)
	}
	// Told apart by inode and member number (which process accepts is
	// known from accept events, sampled away here).
	inos := map[uint64]bool{inodeOf(t, rp1.FD()): true, inodeOf(t, rp2.FD()): true}
	for _, m := range members {
		if !inos[m.Inode] || m.Member == 0 || len(members) == 2 && members[0].Member == members[1].Member {
			t.Errorf("SO_REUSEPORT member %+v: want inode one of %v, its own member number", m, inos)
		}
	}
	var portRow *render.LatencyGroupJSON
	prs := parseLatency(t, byPort.stdout.String())
	for i := range prs {
		if prs[i].Port == rp1.Port() {
			portRow = &prs[i]
		}
	}
	if len(prs) != 1 || portRow == nil || portRow.Listeners != 2 || portRow.Accepts != 16 ||
		len(portRow.Addrs) != 1 || portRow.Addrs[0] != "127.0.0.1" || portRow.Addr != "" {
		t.Errorf("by port: %d rows, SO_REUSEPORT port row %+v", len(prs), portRow)
	}
}

// kernelHasQueueDepths: enqueue events carry depths on the fentry and
// kprobe tiers, and on the tracepoint tier from 6.6 (sk_data_ready).
func kernelHasQueueDepths(stderr string) bool {
	_, rest, ok := strings.Cut(stderr, "synq: ")
	if !ok {
		return false
	}
	tier, rest, _ := strings.Cut(rest, " tier on Linux ")
	release, _, _ := strings.Cut(rest, ";")
	return tier != string(tracer.TierTracepoint) || releaseAtLeast(release, 6, 6)
}

// reusePortLoad makes 16 connections to an SO_REUSEPORT pair that accepts
// at once, and closes them.
func reusePortLoad(ns *netlab.Netns, rp1, rp2 *netlab.Listener) error {
	s1, s2 := netlab.Serve(rp1, netlab.ServerConfig{}), netlab.Serve(rp2, netlab.ServerConfig{})
	defer s2.Stop()
	defer s1.Stop()
	res, err := ns.DialMany(context.Background(), rp1.String(), 16, time.Second)
	if err != nil {
		return err
	}
	defer res.Close()
	deadline := time.Now().Add(2 * time.Second)
	for s1.Accepts()+s2.Accepts() < 16 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := s1.Accepts() + s2.Accepts(); n != 16 {
		return fmt.Errorf("SO_REUSEPORT pair accepted %d of 16", n)
	}
	return nil
}

// The issue this keeps fixed: `synq latency` printed max 251.66ms (a bucket
// midpoint) for a true 265.77ms, and "max 18" for a backlog-16 queue whose
// deepest enqueue was 17. Here 17 connections fill a backlog-16 accept
// queue (full means more than 16), wait hold and are accepted: every one
// waited at least hold (all were queued before it started) and at most
// from before the first dial to after the last accept. The max printed,
// in JSON and in text, is within those bounds (the text to its two
// decimals); the depth max is exactly 17; no percentile exceeds a max.
func TestKernelLatencyExactMax(t *testing.T) {
	const backlog, n, hold = 16, 17, 265 * time.Millisecond
	name := fmt.Sprintf("synq-latmax-%d", os.Getpid())
	ns, l := testListener(t, name, backlog)
	run := func(format string) (out, stderr string, lo, hi time.Duration) {
		r := startSynq(append([]string{"latency", "--duration", "1500ms", "--netns", name, "--output", format}, kerneltest.TierArgs()...)...)
		r.attached(t)
		lo, hi = holdAccepts(t, ns, l, n, hold)
		r.wait(t, 10*time.Second)
		return r.stdout.String(), r.stderr.String(), lo, hi
	}

	out, stderr, lo, hi := run("json")
	t.Logf("json (true max within [%v, %v]):\n%s", lo, hi, out)
	rows := parseLatency(t, out)
	if len(rows) != 1 {
		t.Fatalf("%d rows, want 1", len(rows))
	}
	r := rows[0]
	if r.Accepts != n || r.MaxNs == nil || time.Duration(*r.MaxNs) < lo || time.Duration(*r.MaxNs) > hi {
		t.Errorf("%d accepts, max %v; want %d, max within [%v, %v]", r.Accepts, nsDuration(r.MaxNs), n, lo, hi)
	} else if *r.P50Ns > *r.MaxNs || *r.P90Ns > *r.MaxNs || *r.P99Ns > *r.MaxNs {
		t.Errorf("percentiles above the max: p50 %d p90 %d p99 %d max %d", *r.P50Ns, *r.P90Ns, *r.P99Ns, *r.MaxNs)
	}
	if last := r.Buckets[len(r.Buckets)-1]; r.MaxNs != nil && last.ToNs < uint64(*r.MaxNs) {
		t.Errorf("buckets end at %d ns, below the max %v", last.ToNs, nsDuration(r.MaxNs))
	}
	depths := kernelHasQueueDepths(stderr)
	if d := r.AcceptQueueDepth; depths && (d.Max == nil || *d.Max != n || *d.P50 > *d.Max || *d.P99 > *d.Max) {
		t.Errorf("accept queue depth %+v: want max %d exactly (backlog %d)", d, n, backlog)
	}

	out, _, lo, hi = run("text")
	t.Logf("text (true max within [%v, %v]):\n%s", lo, hi, out)
	var maxText, depthText string
	for _, line := range strings.Split(out, "\n") {
		_, after, ok := strings.Cut(line, "  max ")
		switch {
		case ok && strings.HasPrefix(line, "accept latency:"):
			maxText, _, _ = strings.Cut(after, " ")
		case ok && strings.HasPrefix(line, "accept queue depth"):
			depthText = after
		}
	}
	got, err := time.ParseDuration(strings.Replace(maxText, "µs", "us", 1))
	if err != nil || got < lo.Truncate(10*time.Microsecond) || got > hi+10*time.Microsecond {
		t.Errorf("text max %q, want within [%v, %v] (printed to 10µs)", maxText, lo, hi)
	}
	if depths && depthText != fmt.Sprint(n) {
		t.Errorf("text depth max %q, want %d", depthText, n)
	}
}

// holdAccepts fills l's accept queue with n connections, waits hold and
// accepts them all: every accept latency lies within [lo, hi].
func holdAccepts(t *testing.T, ns *netlab.Netns, l *netlab.Listener, n int, hold time.Duration) (lo, hi time.Duration) {
	t.Helper()
	t0 := time.Now()
	res, err := ns.DialMany(context.Background(), l.String(), n, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	if err := l.WaitQueue(uint32(n), time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(hold)
	for range n {
		c, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	return hold, time.Since(t0)
}

// The same in one `synq top` interval, numbers from the kernel alone (the
// stream sampled to nothing): the latency max is within the bounds, no
// percentile above it, and the accept queue's peak is exactly 17 (its
// histogram bucket starts at 16).
func TestKernelTopExactMax(t *testing.T) {
	const backlog, n, hold = 16, 17, 265 * time.Millisecond
	name := fmt.Sprintf("synq-topmax-%d", os.Getpid())
	ns, l := testListener(t, name, backlog)
	r := startSynq(append([]string{"top", "--once", "--interval", "1500ms", "--netns", name, "--output", "json", "--sample", "100000"}, kerneltest.TierArgs()...)...)
	r.attached(t)
	lo, hi := holdAccepts(t, ns, l, n, hold)
	r.wait(t, 10*time.Second)
	t.Logf("true max within [%v, %v]:\n%s", lo, hi, r.stdout)
	var f struct{ Rows []render.TopRowJSON }
	if err := json.Unmarshal([]byte(r.stdout.String()), &f); err != nil {
		t.Fatal(err)
	}
	var row *render.TopRowJSON
	for i := range f.Rows {
		if f.Rows[i].Port == l.Port() {
			row = &f.Rows[i]
		}
	}
	if row == nil {
		t.Fatalf("no row for %s", l)
	}
	lat := row.AcceptLatency
	if lat.Count != n || lat.MaxNs == nil || time.Duration(*lat.MaxNs) < lo || time.Duration(*lat.MaxNs) > hi ||
		*lat.P50Ns > *lat.MaxNs || *lat.P99Ns > *lat.MaxNs {
		t.Errorf("accept latency: %d accepts, p50 %v p99 %v max %v; want %d, max within [%v, %v], none above it",
			lat.Count, nsDuration(lat.P50Ns), nsDuration(lat.P99Ns), nsDuration(lat.MaxNs), n, lo, hi)
	}
	if kernelHasQueueDepths(r.stderr.String()) && row.AcceptQueue.Peak != n {
		t.Errorf("accept queue peak %d, want %d (backlog %d)", row.AcceptQueue.Peak, n, backlog)
	}
}
