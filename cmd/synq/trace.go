package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/synq-trace/synq/internal/aggregate"
	"github.com/synq-trace/synq/internal/netns"
	"github.com/synq-trace/synq/internal/reconcile"
	"github.com/synq-trace/synq/internal/render"
	"github.com/synq-trace/synq/tracer"
	"github.com/urfave/cli/v2"
)

func traceCommand() *cli.Command {
	return &cli.Command{
		Name:  "trace",
		Usage: "stream listen-path events: SYNs, drops, cookies, enqueues, accepts with latency",
		Flags: []cli.Flag{
			flagOutput, flagNetns, flagPort, flagBTF, flagSample,
			&cli.StringFlag{Name: "events", Usage: "comma list of event kinds (syn, syn-drop, cookie, synack-retrans, enqueue, ack-overflow, accept)"},
			flagTier,
			&cli.DurationFlag{Name: "duration", Usage: "stop after this long (default: until Ctrl-C)"},
			&cli.DurationFlag{Name: "reconcile", Usage: "also reconcile with the kernel's counters every `D` (e.g. 5s); always done on exit"},
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "report every hook and why better tiers were skipped"},
		},
		Action: runTrace,
	}
}

func runTrace(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("trace takes no arguments, got %q", c.Args().First())
	}
	format, err := outputFormat(c)
	if err != nil {
		return err
	}
	kinds, err := parseKinds(c.String("events"))
	if err != nil {
		return err
	}
	cfg, only, err := tracerConfig(c, kinds)
	if err != nil {
		return err
	}
	if c.Duration("duration") < 0 {
		return usagef("invalid --duration %v: must be positive", c.Duration("duration"))
	}
	if every := c.Duration("reconcile"); every < 0 || c.IsSet("reconcile") && every < 100*time.Millisecond {
		return usagef("invalid --reconcile %v: want an interval of at least 100ms", every)
	}
	tr, err := openTracer(c, cfg)
	if err != nil {
		return err
	}
	defer tr.Close()
	if unseen := unseenKinds(kinds, tr.Info()); len(unseen) > 0 {
		fmt.Fprintf(c.App.ErrWriter, "synq: the %s tier cannot see %s on this kernel: none will be printed\n",
			tr.Info().Tier, strings.Join(unseen, ", "))
	}
	var traced *reconcile.Namespace
	if only != nil {
		n := reconcile.FromNS(*only)
		traced = &n
	}
	rec := startReconcile(c, tr, traced, cfg.Port, c.Duration("reconcile"))
	defer rec.Close()
	if _, err := streamEvents(c, tr, format, rec); err != nil {
		return err
	}
	return rec.final(c, format, nil)
}

// unseenKinds are the asked kinds (--events) the attached hooks cannot
// produce, e.g. syn on the tracepoint tier.
func unseenKinds(asked []tracer.Kind, info tracer.Info) []string {
	var out []string
	for _, k := range asked {
		if !slices.Contains(info.Kinds(), k) && !slices.Contains(out, k.String()) {
			out = append(out, k.String())
		}
	}
	return out
}

// openTracer opens the tracer (cfg from tracerConfig) and says which tier it
// picked.
func openTracer(c *cli.Context, cfg tracer.Config) (*tracer.Tracer, error) {
	tr, err := openTracerQuiet(c.Context, cfg)
	if err != nil {
		return nil, err
	}
	reportTier(c.App.ErrWriter, tr.Info(), c.Bool("verbose"))
	return tr, nil
}

// openTracerQuiet opens without the "attached" line, for callers that set
// up more (baselines) before saying so.
func openTracerQuiet(ctx context.Context, cfg tracer.Config) (*tracer.Tracer, error) {
	tr, err := whileLoading(ctx, func() (*tracer.Tracer, error) { return tracer.Open(cfg) })
	if err != nil {
		return nil, kernelErr(err)
	}
	return tr, nil
}

// streamEvents prints events until Ctrl-C or --duration, then the summary.
// With rec it also keeps rec's listener bookkeeping and prints its periodic
// reports.
func streamEvents(c *cli.Context, tr *tracer.Tracer, format render.Format, rec *reconciling) (map[tracer.Kind]uint64, error) {
	ctx := c.Context
	if d := c.Duration("duration"); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	out := traceOutput(c.App.Writer)
	ew := render.NewEventWriter(out, format)
	if err := ew.Header(); err != nil {
		return nil, err
	}
	if err := out.Flush(); err != nil { // the header at once, events or not
		return nil, fmt.Errorf("write output: %w", err)
	}
	byKind := map[tracer.Kind]uint64{}
	var mu sync.Mutex // out: events here, JSON reports from rec's goroutine
	var werr error
	// Periodic reports: JSON between the event lines, text on stderr once
	// the events so far are out.
	stop := rec.run(ctx, c, format, func(write func(w io.Writer) error) {
		mu.Lock()
		defer mu.Unlock()
		if werr == nil {
			werr = out.Flush()
		}
		switch {
		case format != render.JSON:
			_ = write(c.App.ErrWriter)
		case werr == nil:
			if werr = write(out); werr == nil {
				werr = out.Flush()
			}
		}
	})
	err := tr.Read(ctx, func(ev *tracer.Event) {
		byKind[ev.Kind]++
		rec.observe(ev)
		mu.Lock()
		if werr == nil {
			werr = ew.Write(ev)
		}
		mu.Unlock()
	})
	stop()
	if ferr := out.Flush(); werr == nil {
		werr = ferr
	}
	if err != nil {
		return nil, err
	}
	if werr != nil {
		return nil, fmt.Errorf("write output: %w", werr)
	}
	st, err := tr.Stats()
	if err != nil {
		return nil, err
	}
	fmt.Fprintln(c.App.ErrWriter, summaryLine(byKind, st))
	return byKind, nil
}

func summaryLine(byKind map[tracer.Kind]uint64, st tracer.Stats) string {
	var total uint64
	var parts []string
	for _, k := range tracer.AllKinds {
		if n := byKind[k]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", k, n))
			total += n
		}
	}
	s := fmt.Sprintf("synq: %d events", total)
	if len(parts) > 0 {
		s += " (" + strings.Join(parts, " ") + ")"
	}
	s += fmt.Sprintf(", lost %d", st.Lost+st.RecursionMisses+st.BadRecords)
	if st.Lost+st.RecursionMisses+st.BadRecords > 0 {
		s += fmt.Sprintf(" (ring buffer full %d, recursion misses %d, undecodable %d)", st.Lost, st.RecursionMisses, st.BadRecords)
	}
	return s
}

// reportTier says which tier was picked, and with verbose every hook and
// why better tiers were skipped.
func reportTier(w io.Writer, info tracer.Info, verbose bool) {
	kinds := make([]string, 0, 8)
	for _, k := range info.Kinds() {
		kinds = append(kinds, k.String())
	}
	fmt.Fprintf(w, "synq: %s tier on Linux %s; events: %s\n", info.Tier, info.Kernel, strings.Join(kinds, ", "))
	var skipped []string
	for _, t := range tracer.Tiers {
		if err, ok := info.Skipped[t]; ok {
			skipped = append(skipped, fmt.Sprintf("%s: %v", t, err))
		}
	}
	sort.Strings(skipped)
	for _, s := range skipped {
		fmt.Fprintf(w, "synq: skipped tier %s\n", s)
	}
	for _, h := range info.Hooks {
		if h.Err != nil {
			fmt.Fprintf(w, "synq: hook %s (%s) not attached: %v\n", h.Program, h.Target, h.Err)
		} else if verbose {
			fmt.Fprintf(w, "synq: hook %s (%s) attached\n", h.Program, h.Target)
		}
	}
	if verbose {
		for _, n := range info.Notes {
			fmt.Fprintf(w, "synq: note: %s\n", n)
		}
	}
}

// reconciling runs a reconcile.Reconciler beside the event stream. A nil
// *reconciling (reconciliation unavailable) does nothing.
type reconciling struct {
	rec     *reconcile.Reconciler
	snap    *tracer.Snapshotter
	ownSnap bool          // snap is closed with this
	every   time.Duration // periodic reports; 0: on exit only
}

// trackEvery is how often listeners are listed between reports, so that
// listeners closing before the report are still accounted for.
const trackEvery = time.Second

// startReconcile takes the baselines of the namespaces the tracer traces:
// traced, or every namespace (the host's is always reported); with every > 0
// it also reports periodically. When it cannot, it says so and returns nil:
// tracing goes on without it.
func startReconcile(c *cli.Context, tr *tracer.Tracer, traced *reconcile.Namespace, port uint16, every time.Duration) *reconciling {
	snap, err := newSnapshotter(c.Context, c.String("btf"))
	if err != nil {
		fmt.Fprintf(c.App.ErrWriter, "synq: no reconciliation with the kernel's counters: %v\n", err)
		return nil
	}
	r := startReconcileWith(c, tr, snap, traced, port, every)
	if r == nil {
		snap.Close()
		return nil
	}
	r.ownSnap = true
	return r
}

// startReconcileWith lists listeners with the caller's snapshotter (safe
// for concurrent use), which it does not close.
func startReconcileWith(c *cli.Context, tr *tracer.Tracer, snap *tracer.Snapshotter, traced *reconcile.Namespace, port uint16, every time.Duration) *reconciling {
	fail := func(err error) *reconciling {
		fmt.Fprintf(c.App.ErrWriter, "synq: no reconciliation with the kernel's counters: %v\n", err)
		return nil
	}
	cfg := reconcile.Config{Traced: traced, Port: port}
	if traced == nil {
		cfg.Discover = reconcile.AllNamespaces
		if host, err := netns.Current(); err == nil {
			cfg.Host = host.Inode
		}
	}
	rec, err := reconcile.New(tr, snap, cfg)
	if err != nil {
		return fail(err)
	}
	return &reconciling{rec: rec, snap: snap, every: every}
}

func (r *reconciling) Close() {
	if r != nil && r.ownSnap {
		r.snap.Close()
	}
}

// coverage sums the claimed counters over the namespaces reconciled; nil
// when reconciliation is off or the report failed.
func (r *reconciling) coverage() []aggregate.Coverage {
	if r == nil {
		return nil
	}
	rep, err := r.rec.Report(false)
	if err != nil {
		return nil
	}
	out := []aggregate.Coverage{}
	for _, row := range rep.Totals() {
		out = append(out, aggregate.Coverage{Counter: row.Counter, Kernel: *row.Kernel, Synq: *row.Synq})
	}
	return out
}

func (r *reconciling) observe(ev *tracer.Event) {
	if r != nil {
		r.rec.Observe(ev)
	}
}

// run tracks listeners and emits periodic reports through emit until the
// returned stop is called (which waits for them to end).
func (r *reconciling) run(ctx context.Context, c *cli.Context, format render.Format, emit func(func(io.Writer) error)) (stop func()) {
	if r == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { r.rec.Track(ctx, trackEvery) })
	if r.every > 0 {
		wg.Go(func() {
			t := time.NewTicker(r.every)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				rep, err := r.rec.Report(false)
				if err != nil {
					fmt.Fprintf(c.App.ErrWriter, "synq: reconcile: %v\n", err)
					continue
				}
				emit(func(w io.Writer) error { return writeReport(w, format, rep) })
			}
		})
	}
	return func() {
		cancel()
		wg.Wait()
	}
}

// final prints the report on exit: text on stderr after the summary line
// (and after what first prints, if not nil), JSON as a last
// {"reconcile": ...} line on stdout.
func (r *reconciling) final(c *cli.Context, format render.Format, first func(*reconcile.Report)) error {
	if r == nil {
		return nil
	}
	rep, err := r.rec.Report(true)
	if err != nil {
		fmt.Fprintf(c.App.ErrWriter, "synq: reconcile: %v\n", err)
		return nil
	}
	if first != nil {
		first(rep)
	}
	w := c.App.ErrWriter
	if format == render.JSON {
		w = c.App.Writer
	} else {
		fmt.Fprintln(w)
	}
	return writeReport(w, format, rep)
}

func writeReport(w io.Writer, format render.Format, rep *reconcile.Report) error {
	if format == render.JSON {
		return reconcile.WriteJSON(w, rep)
	}
	return reconcile.WriteText(w, rep)
}
