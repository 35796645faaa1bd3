package command

import (
	"context"
	"fmt"
	"time"

	"github.com/synq-trace/synq/internal/demo"
	"github.com/synq-trace/synq/internal/ledger"
	"github.com/synq-trace/synq/internal/reconcile"
	"github.com/synq-trace/synq/internal/render"
	"github.com/synq-trace/synq/tracer"
)

// DemoOptions are demo's flags, checked.
type DemoOptions struct {
	Format   render.Format
	Tracer   tracer.Config // from tracerConfig; Netns is the demo's
	Duration time.Duration // --duration
}

// Demo runs a slow and a healthy listener under load in their own netns,
// traces them for Duration and reconciles.
func Demo(ctx context.Context, env Env, o DemoOptions) error {
	cfg := o.Tracer
	d, err := demo.Run(ctx, demo.Options{})
	if err != nil {
		return fmt.Errorf("start demo: %w", err)
	}
	defer d.Close()
	ns := d.Netns()
	fmt.Fprintf(env.Stderr, "synq: demo in netns %s (inode %d): slow listener 127.0.0.1:%d (backlog 8), healthy 127.0.0.1:%d\n",
		ns.Name(), ns.Inode(), d.Ports().Slow, d.Ports().Healthy)

	cfg.Netns = uint32(ns.Inode())
	tr, err := openTracer(env, cfg)
	if err != nil {
		return err
	}
	defer tr.Close()
	rec := startReconcile(env, tr, &ledger.Namespace{Inode: ns.Inode(), Name: ns.Name(), Do: ns.Do}, 0, 0)
	defer rec.Close()
	if _, err := streamEvents(ctx, env, o.Duration, tr, o.Format, rec); err != nil {
		return err
	}
	// The per-listener table first, then the reconciliation.
	return rec.final(env, o.Format, func(rep *reconcile.Report) {
		if n, ok := rep.Namespace(ns.Inode()); ok {
			render.PrintDemoListeners(env.Stderr, n.Listeners)
		}
	})
}
