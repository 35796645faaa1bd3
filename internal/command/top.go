package command

import (
	"context"
	"fmt"
	"runtime/debug"
	"slices"
	"time"

	"github.com/synq-trace/synq/internal/aggregate"
	"github.com/synq-trace/synq/internal/ledger"
	"github.com/synq-trace/synq/internal/netns"
	"github.com/synq-trace/synq/internal/render"
	"github.com/synq-trace/synq/tracer"
)

// TopOptions are top's flags, checked.
type TopOptions struct {
	Format   render.Format
	Interval time.Duration     // --interval: one frame per interval
	Once     bool              // --once: one frame, then return
	Sort     aggregate.SortKey // --sort: the key until s is pressed
	Tracer   tracer.Config     // from tracerConfig
	Only     *netns.NS         // --netns, nil for every namespace
	Workload
}

// Top shows every listener's rates, queues and latency, one frame per
// interval, until ctx ends (or after one frame with Once).
func Top(ctx context.Context, env Env, o TopOptions) error {
	cfg, only := o.Tracer, o.Only
	// Counts, latency and accept-queue peaks come from the kernel's maps;
	// events only add SYN-queue peaks and name listeners. A 1 MiB ring
	// (16 wakeup batches) is plenty for that, and the ring is mapped twice
	// into synq's memory: the default 4 MiB would be 8 MiB of its RSS.
	cfg.RingBytes = 1 << 20
	resolver := o.resolver(env)
	defer resolver.Close()
	if err := o.check(env, only, cfg.Port, resolver); err != nil {
		return err
	}
	snap, err := newSnapshotter(env)
	if err != nil {
		return kernelErr(err)
	}
	defer snap.Close()
	// One walk per refresh serves the rows and the reconciliation (it reads
	// each namespace's counters too).
	walker, release, err := newWalker(env, snap, only, cfg.Port)
	if err != nil {
		return err
	}
	defer release()
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
	tr, err := openTracerQuiet(env, cfg)
	if err != nil {
		return err
	}
	defer tr.Close()
	debug.FreeOSMemory()
	top := aggregate.NewTopView(tr.Info(), time.Now(), initial)
	// Reconciliation with the kernel's counters, for the header.
	rec := startReconcileWith(env, tr, snap, walker, cfg.Port, 0)
	defer rec.Close()
	render.ReportTier(env.Stderr, tr.Info(), env.Verbose)

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

	out := render.NewTopOutput(env.Stdout, o.Format, o.Interval, o.Once)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := out.Start(cancel); err != nil {
		return err
	}
	defer out.Stop()

	if o.Interval > trackEvery {
		// Between refreshes, listings place listeners that close early.
		stopRec := rec.run(ctx, env, o.Format, nil)
		defer stopRec()
	}
	owners := aggregate.OwnerCache{MaxAge: 10 * time.Second, Resolver: resolver}
	tick := time.NewTicker(o.Interval)
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
		case <-out.Redraw:
			if last != nil {
				k := out.SortKey(o.Sort)
				aggregate.Sort(last.Rows, k)
				if err := out.Frame(last, k); err != nil {
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
			if !o.Filter.Empty() {
				f.Rows = slices.DeleteFunc(f.Rows, func(r aggregate.Row) bool { return !o.selects(r.Owners) })
			}
			f.Coverage = rec.coverage(s)
			k := out.SortKey(o.Sort)
			aggregate.Sort(f.Rows, k)
			last = &f
			if err := out.Frame(&f, k); err != nil {
				return fmt.Errorf("write output: %w", err)
			}
			if o.Once {
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
