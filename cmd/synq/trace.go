package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/synq-trace/synq/internal/render"
	"github.com/synq-trace/synq/tracer"
	"github.com/urfave/cli/v2"
)

func traceCommand() *cli.Command {
	return &cli.Command{
		Name:  "trace",
		Usage: "stream listen-path events: SYNs, drops, cookies, enqueues, accepts with latency",
		Flags: []cli.Flag{
			flagOutput, flagNetns, flagPort, flagBTF,
			&cli.StringFlag{Name: "events", Usage: "comma list of event kinds (syn, syn-drop, cookie, synack-retrans, enqueue, ack-overflow, accept)"},
			&cli.StringFlag{Name: "tier", Value: "auto", Usage: "auto, fentry, kprobe or tracepoint"},
			&cli.DurationFlag{Name: "duration", Usage: "stop after this long (default: until Ctrl-C)"},
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
	port, err := portFilter(c)
	if err != nil {
		return err
	}
	kinds, err := parseKinds(c.String("events"))
	if err != nil {
		return err
	}
	tier, err := tracer.ParseTier(c.String("tier"))
	if err != nil {
		return usageErr(err)
	}
	if c.Duration("duration") < 0 {
		return usagef("invalid --duration %v: must be positive", c.Duration("duration"))
	}
	ns, nsSet, err := netnsFilter(c)
	if err != nil {
		return err
	}
	cfg := tracer.Config{Tier: tier, Port: port, Kinds: kinds, BTFPath: c.String("btf")}
	if nsSet {
		cfg.Netns = uint32(ns.Inode)
	}
	tr, err := openTracer(c, cfg)
	if err != nil {
		return err
	}
	defer tr.Close()
	_, err = streamEvents(c, tr, format)
	return err
}

// openTracer opens the tracer with the CLI's wakeup policy and says which
// tier it picked.
func openTracer(c *cli.Context, cfg tracer.Config) (*tracer.Tracer, error) {
	// Wake the reader only per 64 KiB of records or every 100 ms: ring-buffer
	// wakeups dominate the cost of tracing (shared/docs/perf.md).
	cfg.WakeupBytes, cfg.PollInterval = 64<<10, 100*time.Millisecond
	tr, err := tracer.Open(cfg)
	if err != nil {
		return nil, kernelErr(err)
	}
	reportTier(c.App.ErrWriter, tr.Info(), c.Bool("verbose"))
	return tr, nil
}

// streamEvents prints events until Ctrl-C or --duration, then the summary.
func streamEvents(c *cli.Context, tr *tracer.Tracer, format render.Format) (map[tracer.Kind]uint64, error) {
	ctx := c.Context
	if d := c.Duration("duration"); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	out := bufio.NewWriter(c.App.Writer)
	ew := render.NewEventWriter(out, format)
	if err := ew.Header(); err != nil {
		return nil, err
	}
	byKind := map[tracer.Kind]uint64{}
	// Flush at least every poll so a terminal sees events promptly.
	flush := time.NewTicker(200 * time.Millisecond)
	defer flush.Stop()
	var werr error
	err := tr.Read(ctx, func(ev *tracer.Event) {
		byKind[ev.Kind]++
		if werr == nil {
			werr = ew.Write(ev)
		}
		select {
		case <-flush.C:
			out.Flush()
		default:
		}
	})
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
