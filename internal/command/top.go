package command

import (
	"context"
	"fmt"
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
	w, err := watch(env, o.Tracer, o.Only, o.Workload)
	if err != nil {
		return err
	}
	defer w.Close()
	top, rec, readErr := w.top, w.rec, w.readErr

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
	owners := aggregate.OwnerCache{MaxAge: 10 * time.Second, Resolver: w.resolver}
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
			s, err := w.sample(&owners)
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

// TopKinds are the kinds top streams: drops only.
func TopKinds() []tracer.Kind {
	return []tracer.Kind{tracer.KindSynDrop, tracer.KindAckOverflow}
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
