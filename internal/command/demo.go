package command

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/synq-trace/synq/internal/demo"
	"github.com/synq-trace/synq/internal/ledger"
	"github.com/synq-trace/synq/internal/netlab"
	"github.com/synq-trace/synq/internal/reconcile"
	"github.com/synq-trace/synq/internal/render"
	"github.com/synq-trace/synq/tracer"
)

// DemoOptions are demo's flags, checked.
type DemoOptions struct {
	Format      render.Format
	Tracer      tracer.Config // from tracerConfig; Netns is the demo's
	Duration    time.Duration // --duration
	Trace       bool          // --trace: stream the events too
	SlowBacklog int           // --slow-backlog
	// Acceptor runs each server (demo.Options.Acceptor): cmd/synq runs
	// them as processes of their own.
	Acceptor func(role string, l *netlab.Listener, cfg netlab.ServerConfig) (demo.Acceptor, error)
}

// Demo runs a slow and a healthy listener under load in their own netns,
// traces them for Duration, and ends with the per-listener table, the
// servers' accepts and the reconciliation on stdout.
func Demo(ctx context.Context, env Env, o DemoOptions) error {
	cfg := o.Tracer
	d, err := demo.Run(ctx, demo.Options{Acceptor: o.Acceptor, SlowBacklog: o.SlowBacklog})
	if err != nil {
		return fmt.Errorf("start demo: %w", err)
	}
	defer d.Close()
	ns := d.Netns()
	slow, _ := d.Listeners()
	_, backlog, _ := slow.Queue()
	fmt.Fprintf(env.Stderr, "synq: demo in netns %s (inode %d): demo-slow on 127.0.0.1:%d (backlog %d), demo-healthy on 127.0.0.1:%d, for %v\n",
		ns.Name(), ns.Inode(), d.Ports().Slow, backlog, d.Ports().Healthy, o.Duration)

	cfg.Netns = uint32(ns.Inode())
	tr, err := openTracer(env, cfg)
	if err != nil {
		return err
	}
	defer tr.Close()
	rec := startReconcile(env, tr, &ledger.Namespace{Inode: ns.Inode(), Name: ns.Name(), Do: ns.Do}, 0, 0)
	defer rec.Close()
	// Without --trace the events are read (the reconciliation needs them)
	// but not printed.
	events := env
	if !o.Trace {
		events.Stdout = io.Discard
	}
	if _, err := streamEvents(ctx, events, o.Duration, tr, o.Format, rec, nil, nil); err != nil {
		return err
	}
	if rec == nil {
		return nil
	}
	// The report while the listeners are still open (a closed listener's
	// last drops would be missed), then stop the servers for their counts.
	rep, err := rec.rec.Report(true)
	d.Stop()
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	w := env.Stdout
	if o.Format == render.JSON {
		return writeReport(w, o.Format, rep)
	}
	// The per-listener table first, once: not again in the reconciliation.
	if i := slices.IndexFunc(rep.Netns, func(n reconcile.NetnsReport) bool { return n.Inode == ns.Inode() }); i >= 0 {
		render.PrintDemoListeners(w, rep.Netns[i].Listeners)
		rep.Netns[i].Listeners = nil
	}
	st := d.Stats()
	fmt.Fprintf(w, "\nThe servers accepted: demo-slow %d, demo-healthy %d.\n\n", st.SlowAccepts, st.HealthyAccepts)
	return writeReport(w, o.Format, rep)
}
