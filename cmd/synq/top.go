package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/synq-trace/synq/internal/aggregate"
	"github.com/synq-trace/synq/internal/ledger"
	"github.com/synq-trace/synq/internal/render"
	"github.com/synq-trace/synq/tracer"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"
)

func topCommand() *cli.Command {
	return &cli.Command{
		Name:  "top",
		Usage: "live table of every listener: SYN, accept and drop rates by reason, queues now/peak/max, accept latency",
		Flags: []cli.Flag{
			flagOutput, flagSample, flagNetns, flagPort, flagBTF,
			&cli.DurationFlag{Name: "interval", Aliases: []string{"i"}, Value: time.Second, Usage: "refresh every"},
			&cli.BoolFlag{Name: "once", Usage: "print one refresh after --interval and exit"},
			&cli.StringFlag{Name: "sort", Value: string(aggregate.SortDrops), Usage: "drops, syn, accepts, latency or queue"},
			flagTier,
		},
		Action: runTop,
	}
}

// ringDrainWait lets the ring-buffer reader (which polls every 100 ms) deliver
// the events of an interval before the interval is closed.
const ringDrainWait = 150 * time.Millisecond

func runTop(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("top takes no arguments, got %q", c.Args().First())
	}
	format, err := outputFormat(c)
	if err != nil {
		return err
	}
	interval := c.Duration("interval")
	if interval <= 0 {
		return usagef("invalid --interval %v: must be positive", interval)
	}
	key, err := aggregate.ParseSortKey(c.String("sort"))
	if err != nil {
		return usageErr(err)
	}
	cfg, only, err := tracerConfig(c, nil)
	if err != nil {
		return err
	}
	// Counts, latency and accept-queue peaks come from the kernel's maps;
	// events only add SYN-queue peaks and name listeners. A 1 MiB ring
	// (16 wakeup batches) is plenty for that, and the ring is mapped twice
	// into synq's memory: the default 4 MiB would be 8 MiB of its RSS.
	cfg.RingBytes = 1 << 20
	snap, err := tracer.NewSnapshotter(c.String("btf"))
	if err != nil {
		return kernelErr(err)
	}
	defer snap.Close()
	// One walk per refresh serves the rows and the reconciliation (it reads
	// each namespace's counters too).
	walker := newWalker(c, snap, only, cfg.Port)
	walker.MIB = true
	// The sk_drops baseline comes before the tracer attaches: a drop in
	// between is in the sk_drops delta and (correctly) counted.
	initial, err := walker.Walk()
	if err != nil {
		return err
	}
	// Loading parses the kernel's BTF (tens of MiB, garbage once loaded):
	// hand it back before the next load and before the run, so that the
	// peaks do not add up in RSS.
	debug.FreeOSMemory()
	tr, err := openTracerQuiet(cfg)
	if err != nil {
		return err
	}
	defer tr.Close()
	debug.FreeOSMemory()
	top := aggregate.NewTopView(tr.Info(), time.Now(), initial)
	// Reconciliation with the kernel's counters, for the header.
	rec := startReconcileWith(c, tr, snap, walker, cfg.Port, 0)
	defer rec.Close()
	reportTier(c.App.ErrWriter, tr.Info(), c.Bool("verbose"))

	readCtx, stopRead := context.WithCancel(context.Background())
	readErr := make(chan error, 1)
	go func() {
		readErr <- tr.Read(readCtx, func(ev *tracer.Event) {
			top.Observe(ev)
			rec.observe(ev)
		})
	}()
	defer func() {
		stopRead()
		<-readErr
	}()

	out := newTopOutput(c, format, c.Bool("once"))
	ctx, cancel := context.WithCancel(c.Context)
	defer cancel()
	if err := out.start(cancel); err != nil {
		return err
	}
	defer out.stop()

	if interval > trackEvery {
		// Between refreshes, listings place listeners that close early.
		stopRec := rec.run(ctx, c, format, nil)
		defer stopRec()
	}
	owners := aggregate.OwnerCache{MaxAge: 10 * time.Second}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var last *aggregate.Frame
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-readErr:
			readErr <- err // for the deferred wait
			if err != nil {
				return err
			}
			return nil
		case <-out.redraw:
			if last != nil {
				k := out.sortKey(key)
				aggregate.Sort(last.Rows, k)
				if err := out.frame(last, k); err != nil {
					return err
				}
			}
		case <-tick.C:
			s, err := topSample(tr, walker, &owners)
			if err != nil {
				return err
			}
			select {
			case <-time.After(ringDrainWait):
			case <-ctx.Done():
				return nil
			}
			f := top.Refresh(s)
			f.Coverage = rec.coverage(s)
			k := out.sortKey(key)
			aggregate.Sort(f.Rows, k)
			last = &f
			if err := out.frame(&f, k); err != nil {
				return fmt.Errorf("write output: %w", err)
			}
			if c.Bool("once") {
				return nil
			}
		}
	}
}

// topSample reads what the kernel knows at the end of an interval: one walk
// over the namespaces, then one read of each map.
func topSample(tr *tracer.Tracer, walker *ledger.Walker, owners *aggregate.OwnerCache) (aggregate.Sample, error) {
	now := time.Now()
	v, err := walker.Walk()
	if err != nil {
		return aggregate.Sample{}, err
	}
	counts, err := tr.Counts()
	if err != nil {
		return aggregate.Sample{}, err
	}
	hists, err := tr.Histograms()
	if err != nil {
		return aggregate.Sample{}, err
	}
	maxima, err := tr.Maxima()
	if err != nil {
		return aggregate.Sample{}, err
	}
	st, err := tr.Stats()
	if err != nil {
		return aggregate.Sample{}, err
	}
	inodes := map[uint64]bool{}
	for _, n := range v.Netns {
		for _, l := range n.Listeners {
			inodes[l.Inode] = true
		}
	}
	return aggregate.Sample{Time: now, View: v, Counts: counts, Hists: hists, Maxima: maxima, Stats: st,
		Owners: owners.Lookup(now, inodes), NetnsNames: v.Names()}, nil
}

// topOutput writes frames: JSON lines, plain text tables one after the
// other, or a full-screen view redrawn in place when stdout is a terminal.
type topOutput struct {
	w        io.Writer
	format   render.Format
	tty      *os.File // stdout, when it is a terminal and we redraw in place
	enc      *json.Encoder
	redraw   chan struct{}
	frames   int
	interval time.Duration

	sortPresses atomic.Int32 // s pressed, not yet applied
	sorted      aggregate.SortKey
	restore     func()
}

func newTopOutput(c *cli.Context, format render.Format, once bool) *topOutput {
	o := &topOutput{w: c.App.Writer, format: format, enc: json.NewEncoder(c.App.Writer), interval: c.Duration("interval"),
		redraw: make(chan struct{}, 1)}
	if f, ok := c.App.Writer.(*os.File); ok && format == render.Text && !once && term.IsTerminal(int(f.Fd())) {
		o.tty = f
	}
	return o
}

// start enters the alternate screen and, when stdin is a terminal too, raw
// mode so that q and Ctrl-C (cancel) and s (next sort key) work unbuffered.
func (o *topOutput) start(cancel func()) error {
	if o.tty == nil {
		return nil
	}
	var restoreTerm func()
	if in := int(os.Stdin.Fd()); term.IsTerminal(in) {
		st, err := term.MakeRaw(in)
		if err != nil {
			return fmt.Errorf("terminal raw mode: %w", err)
		}
		restoreTerm = func() { _ = term.Restore(in, st) }
		go o.keys(cancel)
	}
	// Alternate screen, cursor hidden, cleared, and something to look at
	// until the first interval ends.
	io.WriteString(o.tty, "\x1b[?1049h\x1b[?25l\x1b[H\x1b[2Jsynq top: measuring the first interval ("+o.interval.String()+")…")
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-winch:
				o.poke()
			case <-done:
				return
			}
		}
	}()
	o.restore = func() {
		signal.Stop(winch)
		close(done)
		io.WriteString(o.tty, "\x1b[?25h\x1b[?1049l")
		if restoreTerm != nil {
			restoreTerm()
		}
	}
	return nil
}

func (o *topOutput) stop() {
	if o.restore != nil {
		o.restore()
	}
}

func (o *topOutput) poke() {
	select {
	case o.redraw <- struct{}{}:
	default:
	}
}

// keys reads stdin in raw mode. The goroutine ends with the process: a
// blocked read cannot be interrupted portably.
func (o *topOutput) keys(cancel func()) {
	b := make([]byte, 16)
	for {
		n, err := os.Stdin.Read(b)
		if err != nil {
			return
		}
		for _, k := range b[:n] {
			switch k {
			case 'q', 'Q', 3, 4: // 3 = Ctrl-C, 4 = Ctrl-D: no signals in raw mode
				cancel()
				return
			case 's', 'S':
				o.sortPresses.Add(1)
				o.poke()
			}
		}
	}
}

// sortKey is the key in force: --sort, advanced once per s pressed.
func (o *topOutput) sortKey(flag aggregate.SortKey) aggregate.SortKey {
	if o.sorted == "" {
		o.sorted = flag
	}
	for n := o.sortPresses.Swap(0); n > 0; n-- {
		o.sorted = o.sorted.Next()
	}
	return o.sorted
}

func (o *topOutput) frame(f *aggregate.Frame, key aggregate.SortKey) error {
	o.frames++
	if o.format == render.JSON {
		return o.enc.Encode(newTopFrameJSON(f, key))
	}
	lines := topText(f, key, o.tty != nil)
	if o.tty == nil {
		if o.frames > 1 {
			lines = append([]string{""}, lines...)
		}
		_, err := io.WriteString(o.w, strings.Join(lines, "\n")+"\n")
		return err
	}
	width, height, err := term.GetSize(int(o.tty.Fd()))
	if err != nil || width <= 0 || height <= 0 {
		width, height = 200, 50
	}
	if len(lines) > height {
		more := len(lines) - height + 1
		lines = append(lines[:height-1], fmt.Sprintf("… %d more lines (a taller window, or --port/--netns)", more))
	}
	var b bytes.Buffer
	// Home, then each line cleared to its end, then the rest of the
	// screen: one write, no blank flash between frames.
	b.WriteString("\x1b[H")
	for i, l := range lines {
		if i > 0 {
			b.WriteString("\r\n")
		}
		b.WriteString(topClip(l, width))
		b.WriteString("\x1b[K")
	}
	b.WriteString("\x1b[J")
	_, err = o.tty.Write(b.Bytes())
	return err
}

// topClip cuts s to n columns (one per rune: synq prints no wide characters),
// so that no line wraps and scrolls the screen.
func topClip(s string, n int) string {
	i := 0
	for j := range s {
		if i == n {
			return s[:j]
		}
		i++
	}
	return s
}

// topText renders a frame as lines: a header, the table, a legend.
func topText(f *aggregate.Frame, key aggregate.SortKey, interactive bool) []string {
	tp := !f.SynSide()
	listeners := "listeners"
	if len(f.Rows) == 1 {
		listeners = "listener"
	}
	head := fmt.Sprintf("synq top: %s tier, Linux %s; %s events/s, lost %d; %d %s; every %s; sorted by %s",
		f.Tier, f.Kernel, topRate(f.Rate(f.Events)), f.Lost, len(f.Rows), listeners, f.Interval.Round(10*time.Millisecond), key)
	if f.Coverage != nil {
		head += "; " + topCoverage(f.Coverage)
	}
	if interactive {
		head += "  [q quit, s sort]"
	}
	lines := []string{head}
	if f.UnattributedEnqueues > 0 {
		lines = append(lines, fmt.Sprintf("%d enqueues with no listener known (no sk_data_ready tracepoint before 6.6)", f.UnattributedEnqueues))
	}
	lines = append(lines, "")

	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	reasons := "SYNQ-FULL\tACCQ-FULL"
	if tp {
		reasons = "SYN-DROP*"
	}
	fmt.Fprintf(tw, "NETNS\tLISTENER\tSYN/s\tACC/s\tDROP/s\t%s\tACK-OVF\tOTHER\tCOOKIE/s\tACCEPT-Q\tSYN-Q\tLATENCY p50/p99/max\tOWNER\tCGROUP\n", reasons)
	accepting, grouped := false, false
	for i := range f.Rows {
		r := &f.Rows[i]
		ns := strconv.FormatUint(uint64(r.Netns), 10)
		if r.NetnsName != "" {
			ns += " (" + r.NetnsName + ")"
		}
		var syn, cookies, why string
		if tp {
			syn, cookies = "-", "-"
			why = topRate(f.Rate(*r.SynDerived))
		} else {
			syn, cookies = topRate(f.Rate(*r.Syn)), topRate(f.Rate(*r.Cookies))
			why = topRate(f.Rate(*r.SynQueueFull)) + "\t" + topRate(f.Rate(*r.AcceptQueueFull))
		}
		drops := topRate(f.Rate(r.Drops))
		if !r.DropsExact {
			drops += "~"
		}
		lat := "-"
		if r.Latency.Count > 0 {
			lat = render.Duration(r.Latency.P50) + "/" + render.Duration(r.Latency.P99) + "/" + render.Duration(r.Latency.Max)
		}
		own, cg := ownerLabel(r.Owners)
		accepting = accepting || len(r.Owners) > 0 && r.Owners[0].Accepting
		grouped = grouped || r.Member > 0
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ns, aggregate.MemberLabel(r.Endpoint, r.Member), syn,
			topRate(f.Rate(r.Accepts)), drops, why, topRate(f.Rate(r.AckOverflow)), topRate(f.Rate(r.Other)), cookies,
			topQueueText(r.AcceptQueue), topQueueText(r.SynQueue), lat, own, cg)
	}
	tw.Flush()
	lines = append(lines, strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")...)
	lines = append(lines, "")
	if tp {
		lines = append(lines, "* SYN-side drops (either queue full), derived per listener: ListenDrops from sk_drops − ACK-OVF − OTHER; "+
			"tracepoints cannot see a dropped SYN, so no SYN/s, cookies or reason.")
	} else {
		lines = append(lines, "drops/s by reason: SYNQ-FULL SYN dropped, SYN queue full; ACCQ-FULL SYN dropped, accept queue full; "+
			"ACK-OVF final ACK dropped, accept queue full (half-open); OTHER ListenDrops with room in the queues.")
	}
	lines = append(lines, "queues: now/peak/max over the interval; ~ = drops approximated by sk_drops (kernel before 6.11).")
	if grouped {
		lines = append(lines, "LISTENER #k: the k-th socket (by inode) of an SO_REUSEPORT group on that address and port.")
	}
	if accepting {
		lines = append(lines, "OWNER *: the process seen accepting from this socket; +N more hold it.")
	}
	return lines
}

func topQueueText(q aggregate.Queue) string {
	return fmt.Sprintf("%d/%d/%d", q.Now, q.Peak, q.Max)
}

// ownerLabel is "pid/comm +N" and the owner's container id (short) or
// cgroup path.
func ownerLabel(owners []aggregate.Owner) (string, string) {
	if len(owners) == 0 {
		return "-", ""
	}
	own := fmt.Sprintf("%d/%s", owners[0].PID, owners[0].Comm)
	if owners[0].Accepting {
		own += "*"
	}
	if len(owners) > 1 {
		own += fmt.Sprintf(" +%d", len(owners)-1)
	}
	cg := owners[0].Cgroup
	if id := owners[0].ContainerID; id != "" {
		cg = "container " + id[:min(12, len(id))]
	} else if cg == "/" {
		cg = ""
	}
	return own, cg
}

// topRate prints a per-second rate: below 100 with one decimal unless it
// rounds to a whole number (intervals are never exactly 1 s: 40.98 is "41").
func topRate(v float64) string {
	if v < 100 {
		return strings.TrimSuffix(strconv.FormatFloat(v, 'f', 1, 64), ".0")
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

// JSON: one object per refresh. Counts are exact kernel deltas over the
// interval; null where the tier cannot know the value.
type topFrameJSON struct {
	TimeNs               int64   `json:"time_ns"`
	IntervalNs           int64   `json:"interval_ns"`
	Tier                 string  `json:"tier"`
	Kernel               string  `json:"kernel"`
	Events               uint64  `json:"events"`
	EventsPerSec         float64 `json:"events_per_sec"`
	Lost                 uint64  `json:"lost"`
	UnattributedEnqueues uint64  `json:"unattributed_enqueues"`
	// Reconcile: kernel counter vs synq since the start, per claimed
	// counter; absent when not reconciled.
	Reconcile []topCoverageJSON `json:"reconcile,omitempty"`
	Sort      string            `json:"sort"`
	Rows      []topRowJSON      `json:"rows"`
}

type topRowJSON struct {
	Netns         uint32            `json:"netns"`
	NetnsName     string            `json:"netns_name,omitempty"`
	Addr          string            `json:"addr"`
	Port          uint16            `json:"port"`
	Inode         uint64            `json:"inode"`
	Member        int               `json:"member,omitempty"` // number in its SO_REUSEPORT group
	Owners        []aggregate.Owner `json:"owners"`
	Syn           *uint64           `json:"syn"`
	SynPerSec     *float64          `json:"syn_per_sec"`
	Enqueued      uint64            `json:"enqueued"`
	Accepts       uint64            `json:"accepts"`
	AcceptsPerSec float64           `json:"accepts_per_sec"`
	Cookies       *uint64           `json:"cookies"`
	CookiesPerSec *float64          `json:"cookies_per_sec"`
	Drops         uint64            `json:"drops"`
	DropsPerSec   float64           `json:"drops_per_sec"`
	DropsExact    bool              `json:"drops_exact"`
	DropsByReason topDropsJSON      `json:"drops_by_reason"`
	AcceptQueue   topQueueJSON      `json:"accept_queue"`
	SynQueue      topQueueJSON      `json:"syn_queue"`
	AcceptLatency topLatencyJSON    `json:"accept_latency"`
}

type topDropsJSON struct {
	SynQueueFull    *uint64 `json:"syn_queue_full"`
	AcceptQueueFull *uint64 `json:"accept_queue_full"`
	SynDerived      *uint64 `json:"syn_derived"`
	AckOverflow     uint64  `json:"ack_overflow"`
	Other           uint64  `json:"other"`
}

type topQueueJSON struct {
	Now  uint32 `json:"now"`
	Peak uint32 `json:"peak"`
	Max  uint32 `json:"max"`
}

type topLatencyJSON struct {
	Count uint64 `json:"count"`
	P50Ns *int64 `json:"p50_ns"`
	P99Ns *int64 `json:"p99_ns"`
	MaxNs *int64 `json:"max_ns"`
}

func newTopFrameJSON(f *aggregate.Frame, key aggregate.SortKey) topFrameJSON {
	j := topFrameJSON{
		TimeNs: f.Time.UnixNano(), IntervalNs: f.Interval.Nanoseconds(), Tier: string(f.Tier), Kernel: f.Kernel,
		Events: f.Events, EventsPerSec: f.Rate(f.Events), Lost: f.Lost, UnattributedEnqueues: f.UnattributedEnqueues,
		Sort: string(key), Rows: make([]topRowJSON, 0, len(f.Rows)),
	}
	for _, c := range f.Coverage {
		cj := topCoverageJSON{Counter: c.Counter, Kernel: c.Kernel, Synq: c.Synq}
		if c.Kernel > 0 {
			r := float64(c.Synq) / float64(c.Kernel)
			cj.Ratio = &r
		}
		j.Reconcile = append(j.Reconcile, cj)
	}
	perSec := func(v *uint64) *float64 {
		if v == nil {
			return nil
		}
		r := f.Rate(*v)
		return &r
	}
	for _, r := range f.Rows {
		row := topRowJSON{
			Netns: r.Netns, NetnsName: r.NetnsName, Addr: r.Addr.String(), Port: r.Port, Inode: r.Inode, Member: r.Member,
			Owners: r.Owners, Syn: r.Syn, SynPerSec: perSec(r.Syn), Enqueued: r.Enqueued,
			Accepts: r.Accepts, AcceptsPerSec: f.Rate(r.Accepts), Cookies: r.Cookies, CookiesPerSec: perSec(r.Cookies),
			Drops: r.Drops, DropsPerSec: f.Rate(r.Drops), DropsExact: r.DropsExact,
			DropsByReason: topDropsJSON{SynQueueFull: r.SynQueueFull, AcceptQueueFull: r.AcceptQueueFull,
				SynDerived: r.SynDerived, AckOverflow: r.AckOverflow, Other: r.Other},
			AcceptQueue:   topQueueJSON(r.AcceptQueue),
			SynQueue:      topQueueJSON(r.SynQueue),
			AcceptLatency: topLatencyJSON{Count: r.Latency.Count},
		}
		if row.Owners == nil {
			row.Owners = []aggregate.Owner{}
		}
		if r.Latency.Count > 0 {
			p50, p99, mx := r.Latency.P50.Nanoseconds(), r.Latency.P99.Nanoseconds(), r.Latency.Max.Nanoseconds()
			row.AcceptLatency.P50Ns, row.AcceptLatency.P99Ns, row.AcceptLatency.MaxNs = &p50, &p99, &mx
		}
		j.Rows = append(j.Rows, row)
	}
	return j
}

type topCoverageJSON struct {
	Counter string   `json:"counter"`
	Kernel  uint64   `json:"kernel"`
	Synq    uint64   `json:"synq"`
	Ratio   *float64 `json:"coverage_ratio"` // synq/kernel; null when the kernel counted none
}

// topCoverage is the header's reconciliation: "reconcile ListenDrops
// 12/12 (100%) ..." over the claimed counters that moved.
func topCoverage(cov []aggregate.Coverage) string {
	var parts []string
	for _, c := range cov {
		if c.Kernel == 0 && c.Synq == 0 {
			continue
		}
		p := fmt.Sprintf("%s %d/%d", c.Counter, c.Synq, c.Kernel)
		if c.Kernel > 0 {
			p += fmt.Sprintf(" (%.0f%%)", 100*float64(c.Synq)/float64(c.Kernel))
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		return "reconcile: no listen-path counter moved"
	}
	return "reconcile " + strings.Join(parts, ", ")
}
