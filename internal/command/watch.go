package command

import (
	"context"
	"runtime/debug"
	"time"

	"github.com/synq-trace/synq/internal/aggregate"
	"github.com/synq-trace/synq/internal/identity"
	"github.com/synq-trace/synq/internal/ledger"
	"github.com/synq-trace/synq/internal/netns"
	"github.com/synq-trace/synq/internal/render"
	"github.com/synq-trace/synq/tracer"
)

// watching is what top and doctor run: the listeners' first walk, taken
// before the tracer attaches, the tracer, the top view and the
// reconciliation with the kernel's counters, fed by one reader.
type watching struct {
	walker   *ledger.Walker
	initial  *ledger.View
	tr       *tracer.Tracer
	top      *aggregate.Top
	rec      *reconciling
	resolver *identity.Resolver
	// readErr receives Read's result once; whoever takes it puts it back
	// for Close.
	readErr chan error
	closers []func()
}

// watch checks the workload filters and starts watching. Like serve, it
// streams nothing per connection: rates, latency, the queues' peaks and the
// tasks accepting come from the kernel's per-listener maps (counts,
// histograms, maxima). Only drops cross the ring buffer (they name listeners
// that close before a refresh lists them), so accepts are hooked for the maps
// alone, and a 256 KiB ring is plenty (it is mapped twice into synq's
// memory).
func watch(env Env, cfg tracer.Config, only *netns.NS, wl Workload) (_ *watching, err error) {
	cfg.Kinds = TopKinds()
	cfg.AcceptLatency = true
	cfg.SampleEvery = 0
	cfg.RingBytes = 256 << 10
	w := &watching{}
	defer func() {
		if err != nil {
			w.Close()
		}
	}()
	w.resolver = wl.resolver(env)
	w.closers = append(w.closers, func() { w.resolver.Close() })
	if err := wl.check(env, only, cfg.Port, w.resolver); err != nil {
		return nil, err
	}
	snap, err := newSnapshotter(env)
	if err != nil {
		return nil, kernelErr(err)
	}
	w.closers = append(w.closers, func() { snap.Close() })
	// One walk per refresh serves the rows and the reconciliation (it reads
	// each namespace's counters too).
	walker, release, err := newWalker(env, snap, only, cfg.Port)
	if err != nil {
		return nil, err
	}
	w.closers = append(w.closers, release)
	walker.MIB = true
	w.walker = walker
	// The sk_drops baseline comes before the tracer attaches: a drop in
	// between is in the sk_drops delta and (correctly) counted.
	if w.initial, err = walker.Walk(); err != nil {
		return nil, err
	}
	// Loading parses the kernel's BTF (tens of MiB, garbage once loaded):
	// hand it back before the next load and before the run, so that the
	// peaks do not add up in RSS.
	debug.FreeOSMemory()
	tr, err := openTracerQuiet(env, cfg)
	if err != nil {
		return nil, err
	}
	w.closers = append(w.closers, func() { tr.Close() })
	w.tr = tr
	debug.FreeOSMemory()
	w.top = aggregate.NewTopView(tr.Info(), time.Now(), w.initial)
	w.rec = startReconcileWith(env, tr, snap, walker, cfg.Port, 0)
	w.closers = append(w.closers, w.rec.Close)
	render.ReportTier(env.Stderr, tr.Info(), env.Verbose)

	readCtx, stopRead := context.WithCancel(context.Background())
	w.readErr = make(chan error, 1)
	go func() {
		w.readErr <- tr.Read(readCtx, func(ev *tracer.Event) {
			w.top.Observe(ev)
			w.rec.observe(ev)
		})
	}()
	w.closers = append(w.closers, func() {
		stopRead()
		<-w.readErr
	})
	return w, nil
}

// Close stops the reader and detaches everything, in reverse order.
func (w *watching) Close() {
	for i := len(w.closers) - 1; i >= 0; i-- {
		w.closers[i]()
	}
	w.closers = nil
}

// sample reads what the kernel knows now (topSample) with owners through
// the cache.
func (w *watching) sample(owners *aggregate.OwnerCache) (aggregate.Sample, error) {
	return topSample(w.tr, w.walker, owners)
}
