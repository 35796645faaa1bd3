package command

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/synq-trace/synq/internal/netns"
	"github.com/synq-trace/synq/internal/render"
	"github.com/synq-trace/synq/tracer"
)

// TraceOptions are trace's flags, checked.
type TraceOptions struct {
	Format    render.Format
	Tracer    tracer.Config // from tracerConfig, with --events as Kinds
	Only      *netns.NS     // --netns, nil for every namespace
	Duration  time.Duration // --duration, 0 until ctx ends
	Reconcile time.Duration // --reconcile: periodic reports, 0 on exit only
	Workload
}

// Trace streams events until ctx ends or Duration, then says what it saw
// and reconciles with the kernel's counters.
func Trace(ctx context.Context, env Env, o TraceOptions) error {
	cfg, only := o.Tracer, o.Only
	resolver := o.resolver(env)
	defer resolver.Close()
	if err := o.check(env, only, cfg.Port, resolver); err != nil {
		return err
	}
	names := newNamer(env, o.Workload, only, resolver)
	names.refresh() // the listeners named (and selected) before the first event
	tr, err := openTracerQuiet(env, cfg)
	if err != nil {
		return err
	}
	defer tr.Close()
	traced, release, err := holdNetns(only)
	if err != nil {
		return err
	}
	defer release()
	// The baselines before the "attached" line: what happens after it is
	// reconciled.
	rec := startReconcile(env, tr, traced, cfg.Port, o.Reconcile)
	defer rec.Close()
	if rec != nil {
		rec.name = names.name
	}
	render.ReportTier(env.Stderr, tr.Info(), env.Verbose)
	if unseen := UnseenKinds(o.Tracer.Kinds, tr.Info()); len(unseen) > 0 {
		fmt.Fprintf(env.Stderr, "synq: the %s tier cannot see %s on this kernel: none will be printed\n",
			tr.Info().Tier, strings.Join(unseen, ", "))
	}
	if _, err := streamEvents(ctx, env, o.Duration, tr, o.Format, rec, names.event, names.workload); err != nil {
		return err
	}
	return rec.final(env, o.Format, nil)
}

// UnseenKinds are the asked kinds (--events) the attached hooks cannot
// produce, e.g. syn on the tracepoint tier.
func UnseenKinds(asked []tracer.Kind, info tracer.Info) []string {
	var out []string
	for _, k := range asked {
		if !slices.Contains(info.Kinds(), k) && !slices.Contains(out, k.String()) {
			out = append(out, k.String())
		}
	}
	return out
}

// streamEvents prints events until Ctrl-C or --duration, then the summary.
// With rec it also keeps rec's listener bookkeeping and prints its periodic
// reports.
// With show, only the events it selects are printed (and counted in the
// summary); with name, each event names its listener's workload.
func streamEvents(ctx context.Context, env Env, d time.Duration, tr *tracer.Tracer, format render.Format, rec *reconciling,
	show func(*tracer.Event) bool, name func(tracer.ListenerID) *render.EventWorkload) (map[tracer.Kind]uint64, error) {
	if d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	out := traceOutput(env.Stdout)
	ew := render.NewEventWriter(out, format)
	ew.Workload = name
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
	stop := rec.run(ctx, env, format, func(write func(w io.Writer) error) {
		mu.Lock()
		defer mu.Unlock()
		if werr == nil {
			werr = out.Flush()
		}
		switch {
		case format != render.JSON:
			_ = write(env.Stderr)
		case werr == nil:
			if werr = write(out); werr == nil {
				werr = out.Flush()
			}
		}
	})
	err := tr.Read(ctx, func(ev *tracer.Event) {
		rec.observe(ev)
		if show != nil && !show(ev) {
			return
		}
		byKind[ev.Kind]++
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
	fmt.Fprintln(env.Stderr, render.SummaryLine(byKind, st))
	return byKind, nil
}
