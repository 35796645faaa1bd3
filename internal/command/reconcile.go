package command

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/synq-trace/synq/internal/aggregate"
	"github.com/synq-trace/synq/internal/ledger"
	"github.com/synq-trace/synq/internal/netns"
	"github.com/synq-trace/synq/internal/reconcile"
	"github.com/synq-trace/synq/internal/render"
	"github.com/synq-trace/synq/tracer"
)

// reconciling runs a reconcile.Reconciler beside the event stream. A nil
// *reconciling (reconciliation unavailable) does nothing.
type reconciling struct {
	rec     *reconcile.Reconciler
	snap    *tracer.Snapshotter
	ownSnap bool          // snap is closed with this
	every   time.Duration // periodic reports; 0: on exit only
	// name, when set, names each report's listeners (and drops those a
	// workload filter does not select) before it is written.
	name func(*reconcile.Report)
}

// trackEvery is how often listeners are listed between reports, so that
// listeners closing before the report are still accounted for.
const trackEvery = time.Second

// startReconcile takes the baselines of the namespaces the tracer traces:
// traced, or every namespace (the host's is always reported); with every > 0
// it also reports periodically. When it cannot, it says so and returns nil:
// tracing goes on without it.
func startReconcile(env Env, tr *tracer.Tracer, traced *ledger.Namespace, port uint16, every time.Duration) *reconciling {
	snap, err := newSnapshotter(env)
	if err != nil {
		fmt.Fprintf(env.Stderr, "synq: no reconciliation with the kernel's counters: %v\n", err)
		return nil
	}
	w := &ledger.Walker{Lister: snap, Only: traced, MIB: true, Report: reportOnce(env)}
	r := startReconcileWith(env, tr, snap, w, port, every)
	if r == nil {
		snap.Close()
		return nil
	}
	r.ownSnap = true
	return r
}

// startReconcileWith reconciles through the caller's walker, which must read
// each namespace's counters (MIB), and snapshotter, which it does not close.
func startReconcileWith(env Env, tr *tracer.Tracer, snap *tracer.Snapshotter, w *ledger.Walker, port uint16, every time.Duration) *reconciling {
	fail := func(err error) *reconciling {
		fmt.Fprintf(env.Stderr, "synq: no reconciliation with the kernel's counters: %v\n", err)
		return nil
	}
	cfg := reconcile.Config{Traced: w.Only, Port: port, Walker: w}
	if w.Only == nil {
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

// coverage sums the listen-path counters over the namespaces reconciled
// (the claimed ones, and every other one the kernel moved), from the
// refresh's own walk and counter read; nil when reconciliation is off.
func (r *reconciling) coverage(s aggregate.Sample) []aggregate.Coverage {
	if r == nil || s.View == nil {
		return nil
	}
	rep := r.rec.ReportView(false, s.View, s.Counts, s.Stats)
	out := []aggregate.Coverage{}
	for _, row := range rep.Moved() {
		out = append(out, aggregate.Coverage{Counter: row.Counter, Kernel: *row.Kernel, Synq: row.Synq,
			Claimed: row.Claimed, Note: row.Note})
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
func (r *reconciling) run(ctx context.Context, env Env, format render.Format, emit func(func(io.Writer) error)) (stop func()) {
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
					fmt.Fprintf(env.Stderr, "synq: reconcile: %v\n", err)
					continue
				}
				if r.name != nil {
					r.name(rep)
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
func (r *reconciling) final(env Env, format render.Format, first func(*reconcile.Report)) error {
	if r == nil {
		return nil
	}
	rep, err := r.rec.Report(true)
	if err != nil {
		fmt.Fprintf(env.Stderr, "synq: reconcile: %v\n", err)
		return nil
	}
	if r.name != nil {
		r.name(rep)
	}
	if first != nil {
		first(rep)
	}
	w := env.Stderr
	if format == render.JSON {
		w = env.Stdout
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
