package command

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/synq-trace/synq/internal/aggregate"
	"github.com/synq-trace/synq/internal/identity"
	"github.com/synq-trace/synq/internal/netns"
	"github.com/synq-trace/synq/internal/render"
	"github.com/synq-trace/synq/tracer"
)

// LatencyOptions are latency's flags, checked.
type LatencyOptions struct {
	Format   render.Format
	By       aggregate.GroupBy // --by: listener or port
	Duration time.Duration     // --duration, 0 until ctx ends
	Tracer   tracer.Config     // from tracerConfig
	Only     *netns.NS         // --netns, nil for every namespace
	Workload
}

// Latency collects accept latency and accept-queue depth until ctx ends or
// Duration, then prints them per group.
func Latency(ctx context.Context, env Env, o LatencyOptions) error {
	cfg, only, by, d, format := o.Tracer, o.Only, o.By, o.Duration, o.Format
	resolver := o.resolver(env)
	defer resolver.Close()
	if err := o.check(env, only, cfg.Port, resolver); err != nil {
		return err
	}
	tr, err := openTracer(env, cfg)
	if err != nil {
		return err
	}
	defer tr.Close()
	until := "Ctrl-C"
	if d > 0 {
		until = d.String()
	}
	fmt.Fprintf(env.Stderr, "synq: tracing accept latency by %s until %s\n", by, until)

	agg := aggregate.NewLatency(by)
	var end time.Time // set once the run is over; read only by the reader goroutine after
	endSet := make(chan struct{})
	readCtx, stopRead := context.WithCancel(context.Background())
	defer stopRead()
	readErr := make(chan error, 1)
	var n struct{ accepts, enqueues uint64 }
	go func() {
		readErr <- tr.Read(readCtx, func(ev *tracer.Event) {
			select {
			case <-endSet:
				// Events still in the ring buffer at the end: keep what
				// happened before it.
				if ev.Time.After(end) {
					return
				}
			default:
			}
			switch ev.Kind {
			case tracer.KindAccept:
				n.accepts++
			case tracer.KindEnqueue:
				n.enqueues++
			}
			agg.Observe(ev)
		})
	}()

	var timeout <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-ctx.Done():
	case <-timeout:
	case err := <-readErr:
		if err != nil {
			return err
		}
		return nil
	}
	end = time.Now()
	// The kernel's histograms hold every accept and enqueue of the run,
	// whatever the stream sampled or lost (the maps started empty).
	hists, err := tr.Histograms()
	if err != nil {
		return err
	}
	maxima, err := tr.Maxima() // the first call: since the tracer attached
	if err != nil {
		return err
	}
	close(endSet)
	// The reader polls the ring buffer every 100 ms: let it catch up.
	time.Sleep(ringDrainWait)
	stopRead()
	if err := <-readErr; err != nil {
		return err
	}

	// After the run, which Ctrl-C may have ended: not interrupted by it.
	after := env
	after.Interrupted = nil
	ls, err := snapshotAll(after, only)
	if err != nil {
		fmt.Fprintf(env.Stderr, "synq: no listener snapshot (no owners; listeners without streamed events left out): %v\n", err)
	}
	owners := latOwners(ls, resolver)
	if !o.Filter.Empty() {
		// Exact: only the selected listeners count, also in a --by port
		// group shared with others.
		agg.Keep(func(id tracer.ListenerID) bool { return o.selects(owners[id]) })
	}
	agg.UseKernel(hists, maxima, ls)
	groups := agg.Groups(owners, latNetnsNames())
	out := bufio.NewWriter(env.Stdout)
	if format == render.JSON {
		enc := json.NewEncoder(out)
		for _, g := range groups {
			if err := enc.Encode(render.NewLatencyJSON(g, by)); err != nil {
				return err
			}
		}
	} else if err := render.WriteLatencyText(out, groups, by); err != nil {
		return err
	}
	if err := out.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	st, err := tr.Stats()
	if err != nil {
		return err
	}
	lost := st.Lost + st.RecursionMisses + st.BadRecords
	var accepts, enqueues uint64
	for _, g := range groups {
		accepts += g.Latency.Count() + g.UnknownLatency
		enqueues += g.Depth.Count()
	}
	fmt.Fprintf(env.Stderr, "synq: %d accepts, %d enqueues in %d groups (%d and %d events streamed), lost %d\n",
		accepts, enqueues, len(groups), n.accepts, n.enqueues, lost)
	return nil
}

// latOwners finds the processes holding the listeners seen, from one
// snapshot at the end (listeners closed by then have no owner).
func latOwners(ls []tracer.Listener, r *identity.Resolver) map[tracer.ListenerID][]aggregate.Owner {
	inodes := map[uint64]bool{}
	for _, l := range ls {
		inodes[l.Inode] = true
	}
	byInode := ownersOf(inodes, r)
	out := map[tracer.ListenerID][]aggregate.Owner{}
	for _, l := range ls {
		out[l.ID] = byInode[l.Inode]
	}
	return out
}

// latNetnsNames names namespaces from one read of /run/netns (keyed as
// tracer events key them).
func latNetnsNames() map[uint32]string {
	all := netns.Names()
	names := make(map[uint32]string, len(all))
	for ino, n := range all {
		names[uint32(ino)] = n
	}
	return names
}
