package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/synq-trace/synq/internal/aggregate"
	"github.com/synq-trace/synq/internal/hist"
	"github.com/synq-trace/synq/internal/identity"
	"github.com/synq-trace/synq/internal/kerneltest"
	"github.com/synq-trace/synq/internal/ledger"
	"github.com/synq-trace/synq/internal/netlab"
	"github.com/synq-trace/synq/internal/render"
	"github.com/synq-trace/synq/tracer"
)

// runningSynq is a synq command runningSynq in-process.
type runningSynq struct {
	args           []string
	stdout, stderr *kerneltest.Buffer
	cancel         context.CancelFunc
	done           chan int
	code           int
}

// startSynq runs synq with args in-process, wired like runWith (usage
// errors exit 2, one "synq: " line for errors), with top and latency
// registered whether or not main.go lists them yet; cancel is Ctrl-C.
func startSynq(args ...string) *runningSynq {
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningSynq{args: args, stdout: &kerneltest.Buffer{}, stderr: &kerneltest.Buffer{}, cancel: cancel, done: make(chan int, 1)}
	app := newApp()
	for _, cmd := range []*cli.Command{topCommand(), latencyCommand()} {
		if !slices.ContainsFunc(app.Commands, func(c *cli.Command) bool { return c.Name == cmd.Name }) {
			cmd.OnUsageError = app.OnUsageError
			app.Commands = append(app.Commands, cmd)
		}
	}
	app.Writer, app.ErrWriter = r.stdout, r.stderr
	go func() {
		if err := app.RunContext(ctx, append([]string{"synq"}, args...)); err != nil {
			fmt.Fprintf(r.stderr, "synq: %v\n", err)
			r.done <- exitCode(err)
			return
		}
		r.done <- 0
	}()
	return r
}

// attached waits until the command has said which tier it attached.
func (r *runningSynq) attached(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(r.stderr.String(), " tier on Linux ") {
		select {
		case code := <-r.done:
			t.Fatalf("synq %s exited %d before attaching: %s", strings.Join(r.args, " "), code, r.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("synq %s did not attach in 10s: %s", strings.Join(r.args, " "), r.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// wait waits for the command to exit and fails the test unless it exits 0.
func (r *runningSynq) wait(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case r.code = <-r.done:
	case <-time.After(timeout):
		r.cancel()
		t.Fatalf("synq %s still runningSynq after %v", strings.Join(r.args, " "), timeout)
	}
	if r.code != 0 {
		t.Fatalf("synq %s: exit %d: %s", strings.Join(r.args, " "), r.code, r.stderr)
	}
}

// releaseAtLeast compares a uname release ("6.18.44-fc") with major.minor.
func releaseAtLeast(release string, major, minor int) bool {
	var ma, mi int
	fmt.Sscanf(release, "%d.%d", &ma, &mi)
	return ma > major || ma == major && mi >= minor
}

func TestTopBadInput(t *testing.T) {
	checkUsage(t, topCommand, map[string]string{
		"--interval 0s":      "invalid --interval 0s",
		"--sort bogus":       `unknown sort key "bogus"`,
		"--port 0":           "invalid --port 0",
		"--output yaml":      `unknown output "yaml"`,
		"--tier uprobe":      `unknown tier "uprobe"`,
		"--netns no-such-ns": `netns "no-such-ns" does not exist`,
		"extra":              "top takes no arguments",
	})
}

// The text table and the JSON object of one frame, without a kernel.
func TestTopRender(t *testing.T) {
	n := func(v uint64) *uint64 { return &v }
	ep := tracer.Endpoint{Netns: 4026532177, Addr: netip.MustParseAddr("127.0.0.1"), Port: 8080}
	f := &aggregate.Frame{
		Time: time.Unix(1_800_000_000, 0), Interval: 2 * time.Second, Tier: tracer.TierTracepoint, Kernel: "6.18.44", RingRecords: 700,
		Rows: []aggregate.Row{{
			Endpoint: ep, NetnsName: "synq-demo", Inode: 99,
			Owners:   []aggregate.Owner{{PID: 42, Comm: "app", Cgroup: "/system.slice/docker-" + strings.Repeat("ab", 32) + ".scope", Identity: identity.Identity{ContainerID: strings.Repeat("ab", 32), Runtime: "docker"}}, {PID: 43, Comm: "app"}},
			Enqueued: 100, Accepts: 90, Drops: 31, DropsExact: true, SynDerived: n(10), SynReason: ledger.ReasonNotVisible, AckOverflow: 20, Other: 1,
			AcceptQueue: aggregate.Queue{Now: 2, Peak: 9, Max: 8}, SynQueue: aggregate.Queue{Now: 1, Peak: 8, Max: 8},
			Latency: aggregate.Summary{Count: 90, P50: 18 * time.Millisecond, P99: 39 * time.Millisecond, Max: 40 * time.Millisecond},
		}},
	}
	lines := render.TopText(f, aggregate.SortDrops, false)
	text := strings.Join(lines, "\n")
	for _, want := range []string{
		"synq top: tracepoint tier, Linux 6.18.44; ring buffer 350 records/s, lost 0; 1 listener; every 2s; sorted by drops",
		"SYN-DROP*", "4026532177 (synq-demo)", "127.0.0.1:8080", "2/9/8", "1/8/8", "18.00ms/39.00ms/40.00ms",
		"42/app +1", "docker:abababababab", "* SYN-side drops", "SYN-DROP WHY*", "reason not visible on this kernel", "ring buffer 350 records/s",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
	// Rates: 90 accepts, 31 drops, 10 SYN-side, 20 ACK overflows, 1 other in 2 s.
	fields := strings.Fields(lines[3])
	if got := strings.Join(fields[3:10], " "); got != "- 45 15.5 5 10 0.5 -" {
		t.Errorf("rate columns %q in %q", got, lines[3])
	}

	var j map[string]any
	b, _ := json.Marshal(render.NewTopFrameJSON(f, aggregate.SortDrops))
	validateLine(t, "top", b) // the tracepoint tier's nulls
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatal(err)
	}
	row := j["rows"].([]any)[0].(map[string]any)
	reasons := row["drops_by_reason"].(map[string]any)
	if row["syn"] != nil || row["cookies_per_sec"] != nil || reasons["syn_queue_full"] != nil || reasons["syn_derived"].(float64) != 10 {
		t.Errorf("tracepoint-tier unknowns not null or derived drops missing: %s", b)
	}
	lat := row["accept_latency"].(map[string]any)
	if lat["p50_ns"].(float64) != 18e6 || lat["p99_ns"].(float64) != 39e6 || lat["max_ns"].(float64) != 40e6 || lat["count"].(float64) != 90 {
		t.Errorf("accept_latency %v", lat)
	}
	if row["listen_drops_per_sec"].(float64) != 15.5 || j["ring_records_per_sec"].(float64) != 350 || j["interval_ns"].(float64) != 2e9 {
		t.Errorf("rates: %s", b)
	}
	if render.TopClip("abcµdef", 4) != "abcµ" || render.TopClip("ab", 4) != "ab" {
		t.Error("render.TopClip cuts by bytes, not columns")
	}
	for v, want := range map[float64]string{0: "0", 0.04: "0", 0.5: "0.5", 40.98: "41", 99.94: "99.9", 1234.4: "1234"} {
		if got := render.TopRate(v); got != want {
			t.Errorf("render.TopRate(%v) = %q, want %q", v, got, want)
		}
	}

	// fentry/kprobe tiers: SYN/s, cookies and both SYN-side reasons.
	r := &f.Rows[0]
	f.Tier = tracer.TierFentry
	r.SynDerived, r.Syn, r.Cookies, r.SynQueueFull, r.AcceptQueueFull = nil, n(200), n(4), n(2), n(8)
	r.Drops, r.DropsExact = 31, false
	lines = render.TopText(f, aggregate.SortSyn, true)
	if !strings.Contains(lines[0], "[q quit, s sort]") || !strings.Contains(lines[2], "SYNQ-FULL  ACCQ-FULL") {
		t.Errorf("fentry header:\n%s", strings.Join(lines, "\n"))
	}
	if got := strings.Join(strings.Fields(lines[3])[3:11], " "); got != "100 45 15.5~ 1 4 10 0.5 2" {
		t.Errorf("fentry rate columns %q in %q", got, lines[3])
	}
}

// cgroupOwned is a listener held only by a `sleep` in a child cgroup v2
// named like a docker container's scope.
type cgroupOwned struct {
	port             uint16
	pid              int
	cgroup, id, skip string
}

// startCgroupOwned creates the listener in ns, hands it to a sleep moved into
// a new cgroup, and closes the test's copy. On hosts where that cannot be
// done, skip says why.
func startCgroupOwned(t *testing.T, ns *netlab.Netns) *cgroupOwned {
	mnt := cgroup2Mount()
	if mnt == "" {
		return &cgroupOwned{skip: "no cgroup v2 hierarchy mounted"}
	}
	id := fmt.Sprintf("%064x", os.Getpid())
	parent := filepath.Join(mnt, fmt.Sprintf("synq-test-%d", os.Getpid()))
	leaf := filepath.Join(parent, "docker-"+id+".scope")
	if err := os.MkdirAll(leaf, 0o755); err != nil {
		return &cgroupOwned{skip: fmt.Sprintf("cannot create a cgroup under %s: %v", mnt, err)}
	}
	t.Cleanup(func() {
		os.Remove(leaf)
		os.Remove(parent)
	})
	fd, err := ns.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "listener")
	defer f.Close()
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 3); err != nil {
		t.Fatal(err)
	}
	sa, _ := unix.Getsockname(fd)
	cmd := exec.Command("sleep", "60")
	cmd.ExtraFiles = []*os.File{f}
	if err := cmd.Start(); err != nil {
		return &cgroupOwned{skip: fmt.Sprintf("start sleep: %v", err)}
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	if err := os.WriteFile(filepath.Join(leaf, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		return &cgroupOwned{skip: fmt.Sprintf("move sleep into %s: %v", leaf, err)}
	}
	return &cgroupOwned{port: uint16(sa.(*unix.SockaddrInet4).Port), pid: cmd.Process.Pid,
		cgroup: strings.TrimPrefix(leaf, mnt), id: id}
}

func cgroup2Mount() string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS... - FSTYPE SOURCE SUPER
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if ok && strings.HasPrefix(post, "cgroup2 ") {
			if f := strings.Fields(pre); len(f) >= 5 && f[3] == "/" {
				return f[4]
			}
		}
	}
	return ""
}

type topFrameOut struct {
	Tier      string                   `json:"tier"`
	Kernel    string                   `json:"kernel"`
	Lost      uint64                   `json:"lost"`
	Reconcile []render.TopCoverageJSON `json:"reconcile"`
	Rows      []render.TopRowJSON      `json:"rows"`
}

func parseTopFrames(t *testing.T, out string) []topFrameOut {
	t.Helper()
	var fs []topFrameOut
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		validateLine(t, "top", []byte(l))
		assertSchemaStrict(t, "top", []byte(l), "rows")
		var f topFrameOut
		if err := json.Unmarshal([]byte(l), &f); err != nil {
			t.Fatalf("not a JSON frame: %q: %v", l, err)
		}
		fs = append(fs, f)
	}
	return fs
}

func topRowsOn(f topFrameOut, port uint16) []render.TopRowJSON {
	var rs []render.TopRowJSON
	for _, r := range f.Rows {
		if r.Port == port {
			rs = append(rs, r)
		}
	}
	return rs
}

// topRowsOf are the rows of l: its address and port (a tcp4 and a tcp6
// listener can get the same ephemeral port).
func topRowsOf(f topFrameOut, l *netlab.Listener) []render.TopRowJSON {
	var rs []render.TopRowJSON
	for _, r := range topRowsOn(f, l.Port()) {
		if r.Addr == l.Addr().Addr().String() {
			rs = append(rs, r)
		}
	}
	return rs
}

// One interval of `top --once --output json` over listeners with known
// drops, queues, latencies and owners in a private netns, checked against
// the namespace's own counters and the sockets' TCP_INFO.
func TestKernelTopJSON(t *testing.T) {
	kerneltest.Root(t)
	name, ns, listen := namedNetnsListen(t, "synq-top", "tcp")
	full := listen("127.0.0.1:0", 1)  // never accepts: SYN-side drops
	half := listen("127.0.0.1:0", 1)  // never accepts, ACKs delayed: final ACKs dropped
	slow := listen("127.0.0.1:0", 16) // accepts one connection per 100 ms
	rp1 := listen("127.0.0.1:0", 16, netlab.ReusePort())
	rp2 := listen(rp1.String(), 24, netlab.ReusePort())
	idle := listen("[::1]:0", 5) // no traffic at all
	cg := startCgroupOwned(t, ns)

	// Sampled down to (almost) nothing: rates, drops, latency and peaks
	// come from the kernel's counters and histograms.
	top := startSynq("top", "--once", "--interval", "3s", "--netns", name, "--output", "json", "--sample", "100000")
	top.attached(t)
	c0, err := ns.Counters()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	// dial makes n connections to l in the background and hands what came
	// of them to then.
	dial := func(l *netlab.Listener, n int, timeout time.Duration, then func(*netlab.DialResult) error, opts ...netlab.SockOpt) {
		wg.Go(func() {
			res, err := ns.DialMany(ctx, l.String(), n, timeout, opts...)
			if err == nil {
				err = then(res)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	dial(full, 8, 300*time.Millisecond, func(res *netlab.DialResult) error {
		// RST every client before any SYN is retransmitted (1 s): no
		// drop happens after the counters are read.
		res.Close()
		return nil
	})
	dial(half, 6, time.Second, func(res *netlab.DialResult) error {
		time.Sleep(500 * time.Millisecond)
		res.Close()
		return nil
	}, netlab.DelayHandshakeACK())
	dial(rp1, 16, time.Second, func(res *netlab.DialResult) error {
		t.Cleanup(func() { res.Close() })
		if res.Established != 16 {
			return fmt.Errorf("SO_REUSEPORT dials: %+v", res)
		}
		return nil
	})
	dial(slow, 5, time.Second, func(res *netlab.DialResult) error {
		t.Cleanup(func() { res.Close() })
		if err := slow.WaitQueue(5, time.Second); err != nil {
			return err
		}
		s := netlab.Serve(slow, netlab.ServerConfig{Delay: 100 * time.Millisecond, Keep: true})
		t.Cleanup(s.Stop)
		if !s.WaitAccepts(5, 2*time.Second) {
			return fmt.Errorf("slow listener accepted %d of 5", s.Accepts())
		}
		return nil
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	c1, err := ns.Counters()
	if err != nil {
		t.Fatal(err)
	}
	kernelDrops := c1.Sub(c0)["TcpExt.ListenDrops"]
	top.wait(t, 10*time.Second)

	frames := parseTopFrames(t, top.stdout.String())
	if len(frames) != 1 {
		t.Fatalf("--once printed %d frames", len(frames))
	}
	f := frames[0]
	t.Logf("tier %s, kernel %s; netns ListenDrops +%d; stdout:\n%s", f.Tier, f.Kernel, kernelDrops, top.stdout)
	tp := f.Tier == string(tracer.TierTracepoint)
	if f.Lost != 0 {
		t.Errorf("lost %d records", f.Lost)
	}
	// The header's reconciliation: the netns's ListenDrops since the
	// start, in full (every tier claims it on kernels with the rx_sk
	// argument of kfree_skb).
	var rd *render.TopCoverageJSON
	for i, c := range f.Reconcile {
		if c.Counter == "ListenDrops" {
			rd = &f.Reconcile[i]
		}
	}
	if rd == nil {
		t.Errorf("no ListenDrops in the frame's reconcile %+v", f.Reconcile)
	} else if rd.Kernel != kernelDrops || rd.Synq == nil || *rd.Synq != rd.Kernel || rd.Ratio == nil || *rd.Ratio != 1 {
		t.Errorf("reconcile ListenDrops %+v, want kernel %d, synq the same, ratio 1", *rd, kernelDrops)
	}
	one := func(l *netlab.Listener) render.TopRowJSON {
		t.Helper()
		rs := topRowsOf(f, l)
		if len(rs) != 1 {
			t.Fatalf("%d rows for %s", len(rs), l)
		}
		return rs[0]
	}
	queueNow := func(l *netlab.Listener) uint32 {
		q, _, err := l.Queue()
		if err != nil {
			t.Fatal(err)
		}
		return q
	}

	// Drops: every drop in the netns is attributed to its listener, by
	// reasons that add up.
	var total uint64
	for _, l := range []*netlab.Listener{full, half, slow, rp1, idle} {
		for _, r := range topRowsOf(f, l) {
			total += r.ListenDrops
			d := r.DropsByReason
			// By reason: SYN side (derived in total where the hooks cannot
			// see it), ACK overflows, others.
			sum, reasons := d.AckOverflow+d.Other, uint64(0)
			for _, v := range []*uint64{d.SynQueueFull, d.AcceptQueueFull, d.SynOther} {
				if v != nil {
					reasons += *v
				}
			}
			if tp {
				sum += *d.SynDerived
				if d.SynQueueFull != nil && (reasons != *d.SynDerived || (*d.SynDerived > 0 && d.SynSettledBy == "")) {
					t.Errorf("%s:%d: SYN-side reasons %+v do not add up to syn_derived, or say not what settled them", r.Addr, r.Port, d)
				}
			} else {
				sum += reasons - *d.SynOther // other has the SYN side's others
			}
			if sum != r.ListenDrops || !r.ListenDropsExact {
				t.Errorf("%s:%d: drops %d (exact %v) != sum of reasons %+v", r.Addr, r.Port, r.ListenDrops, r.ListenDropsExact, d)
			}
			if tp != (d.SynDerived != nil) || (!tp && d.SynQueueFull == nil) || tp != (r.Syn == nil) {
				t.Errorf("%s:%d: tier %s with reasons %+v syn %v", r.Addr, r.Port, f.Tier, d, r.Syn)
			}
		}
	}
	if kernelDrops == 0 || total != kernelDrops {
		t.Errorf("listeners' drops add up to %d, the netns counted ListenDrops +%d", total, kernelDrops)
	}

	r := one(full)
	if r.ListenDrops == 0 || r.AcceptQueue.Max != 1 || r.AcceptQueue.Now != queueNow(full) || r.AcceptQueue.Peak < 2 {
		t.Errorf("backlog-1 listener: drops %d, accept queue %+v (TCP_INFO says %d)", r.ListenDrops, r.AcceptQueue, queueNow(full))
	}
	if !tp && *r.DropsByReason.AcceptQueueFull == 0 {
		t.Errorf("backlog-1 listener: no SYN dropped for a full accept queue: %+v", r.DropsByReason)
	}
	if tp && *r.DropsByReason.SynDerived == 0 {
		t.Errorf("backlog-1 listener: no SYN-side drops derived: %+v", r.DropsByReason)
	}
	if r.Accepts != 0 || len(r.Owners) != 1 || r.Owners[0].PID != os.Getpid() {
		t.Errorf("backlog-1 listener: accepts %d, owners %+v (want this test, pid %d)", r.Accepts, r.Owners, os.Getpid())
	}

	r = one(half)
	if r.ListenDrops == 0 {
		t.Errorf("delayed-ACK listener: no drops")
	}
	if (!tp || releaseAtLeast(f.Kernel, 6, 15)) && r.DropsByReason.AckOverflow == 0 {
		t.Errorf("delayed-ACK listener: no ack-overflow drops: %+v", r.DropsByReason)
	}

	// Accepted after 100, 200, ... 500 ms (plus the few ms before the
	// server started): p50 = 3rd = 300 ms, p99 = max = 5th = 500 ms.
	r = one(slow)
	lat := r.AcceptLatency
	eps := hist.New().RelativeError()
	inRange := func(v *int64, lo, hi time.Duration) bool {
		return v != nil && float64(*v) >= float64(lo)*(1-eps) && time.Duration(*v) <= hi
	}
	if r.Accepts != 5 || lat.Count != 5 || !inRange(lat.P50Ns, 300*time.Millisecond, 400*time.Millisecond) ||
		!inRange(lat.MaxNs, 500*time.Millisecond, 650*time.Millisecond) || *lat.P99Ns != *lat.MaxNs {
		t.Errorf("slow listener: %d accepts, latency count %d p50 %v p99 %v max %v; want 5, p50 ≈ 300ms, p99 = max ≈ 500ms",
			r.Accepts, lat.Count, nsDuration(lat.P50Ns), nsDuration(lat.P99Ns), nsDuration(lat.MaxNs))
	}
	if (!tp || releaseAtLeast(f.Kernel, 6, 6)) && r.AcceptQueue.Peak < 5 {
		t.Errorf("slow listener: accept queue peak %d, 5 connections waited", r.AcceptQueue.Peak)
	}
	if r.AcceptQueue.Now != 0 || r.ListenDrops != 0 {
		t.Errorf("slow listener: queue %+v, drops %d", r.AcceptQueue, r.ListenDrops)
	}

	// SO_REUSEPORT: two sockets, two rows, each with its own queue.
	rps := topRowsOn(f, rp1.Port())
	if len(rps) != 2 {
		t.Fatalf("%d rows for the SO_REUSEPORT port %d, want 2", len(rps), rp1.Port())
	}
	var queued uint32
	for _, r := range rps {
		l := rp1
		if r.AcceptQueue.Max == 24 {
			l = rp2
		}
		if want := queueNow(l); r.AcceptQueue.Now != want || r.AcceptQueue.Peak < want {
			t.Errorf("SO_REUSEPORT member backlog %d: queue %+v, TCP_INFO %d", r.AcceptQueue.Max, r.AcceptQueue, want)
		}
		queued += r.AcceptQueue.Now
	}
	if rps[0].AcceptQueue.Max == rps[1].AcceptQueue.Max || rps[0].Inode == rps[1].Inode || queued != 16 {
		t.Errorf("SO_REUSEPORT rows %+v / %+v: want backlogs 16 and 24, 16 connections queued", rps[0].AcceptQueue, rps[1].AcceptQueue)
	}

	// A listener without any traffic is listed too.
	if r := one(idle); r.Addr != "::1" || r.AcceptQueue.Max != 5 || r.ListenDrops != 0 || r.Enqueues != 0 {
		t.Errorf("idle listener %+v", r)
	}

	t.Run("cgroup owner", func(t *testing.T) {
		if cg.skip != "" {
			t.Skip(cg.skip)
		}
		rs := topRowsOn(f, cg.port)
		if len(rs) != 1 {
			t.Fatalf("%d rows for the sleep's listener :%d", len(rs), cg.port)
		}
		o := rs[0].Owners
		if len(o) != 1 || o[0].PID != cg.pid || o[0].Comm != "sleep" || !strings.HasSuffix(o[0].Cgroup, cg.cgroup) || o[0].ContainerID != cg.id {
			t.Errorf("owners %+v, want only sleep (pid %d) in cgroup %s, container %s", o, cg.pid, cg.cgroup, cg.id)
		}
	})
}

func nsDuration(v *int64) any {
	if v == nil {
		return nil
	}
	return time.Duration(*v)
}

// Listeners come from the snapshot: one appears with no traffic at all, one
// that closes disappears at the next refresh.
func TestKernelTopListenersComeAndGo(t *testing.T) {
	kerneltest.Root(t)
	name := fmt.Sprintf("synq-top-cg-%d", os.Getpid())
	ns := kerneltest.NamedNetns(t, name)
	a, err := ns.Listen("tcp4", "127.0.0.1:0", 4)
	if err != nil {
		t.Fatal(err)
	}
	top := startSynq("top", "--interval", "300ms", "--netns", name, "--output", "json")
	defer top.cancel()
	top.attached(t)

	// frames waits for a frame satisfying ok.
	waitFrame := func(what string, ok func(topFrameOut) bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			fs := parseTopFrames(t, top.stdout.String())
			if len(fs) > 0 && ok(fs[len(fs)-1]) {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("no frame with %s:\n%s", what, top.stdout)
	}
	waitFrame("listener a", func(f topFrameOut) bool { return len(topRowsOn(f, a.Port())) == 1 })
	b := kerneltest.Listen(t, ns, "tcp4", "127.0.0.1:0", 4)
	a.Close()
	waitFrame("b and without a", func(f topFrameOut) bool {
		return len(topRowsOn(f, a.Port())) == 0 && len(topRowsOn(f, b.Port())) == 1 && len(f.Rows) == 1
	})
	top.cancel()
	top.wait(t, 5*time.Second)
}
