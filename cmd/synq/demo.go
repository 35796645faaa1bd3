package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/synq-trace/synq/internal/demo"
	"github.com/synq-trace/synq/internal/reconcile"
	"github.com/urfave/cli/v2"
)

func demoCommand() *cli.Command {
	return &cli.Command{
		Name: "demo",
		Usage: "run a slow server (backlog 8) and a healthy one under load in netns synq-demo, " +
			"trace them, and show each listener's drops reconciled with the kernel's counters",
		Description: "The servers are processes of their own (demo-slow, demo-healthy). The per-listener table and\n" +
			"the reconciliation go to stdout at the end; --trace also streams every event.",
		Flags: []cli.Flag{
			flagOutput, flagBTF,
			&cli.DurationFlag{Name: "duration", Value: 10 * time.Second, Usage: "how long to run"},
			flagTier,
			&cli.IntFlag{Name: "slow-backlog", Value: 8, Usage: "listen(2) backlog of demo-slow: 1024 is the fix for its drops (see README)"},
			&cli.BoolFlag{Name: "trace", Usage: "also stream every event (as synq trace does) while the demo runs"},
			&cli.StringFlag{Name: "events", Usage: "with --trace, comma list of event kinds to print"},
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "report every hook"},
		},
		Action: runDemo,
	}
}

func runDemo(c *cli.Context) error {
	format, err := outputFormat(c)
	if err != nil {
		return err
	}
	kinds, err := parseKinds(c.String("events"))
	if err != nil {
		return err
	}
	cfg, _, err := tracerConfig(c, kinds)
	if err != nil {
		return err
	}
	if c.Duration("duration") <= 0 {
		return usagef("invalid --duration %v: must be positive", c.Duration("duration"))
	}
	if b := c.Int("slow-backlog"); b < 1 || b > 65535 {
		return usagef("invalid --slow-backlog %d: want 1-65535", b)
	}
	d, err := demo.Run(c.Context, demo.Options{Acceptor: spawnAcceptor(c.App.ErrWriter), SlowBacklog: c.Int("slow-backlog")})
	if err != nil {
		return fmt.Errorf("start demo: %w", err)
	}
	defer d.Close()
	ns := d.Netns()
	fmt.Fprintf(c.App.ErrWriter, "synq: demo in netns %s (inode %d): demo-slow on 127.0.0.1:%d (backlog %d), demo-healthy on 127.0.0.1:%d, for %v\n",
		ns.Name(), ns.Inode(), d.Ports().Slow, c.Int("slow-backlog"), d.Ports().Healthy, c.Duration("duration"))

	cfg.Netns = uint32(ns.Inode())
	tr, err := openTracer(c, cfg)
	if err != nil {
		return err
	}
	defer tr.Close()
	rec := startReconcile(c, tr, &reconcile.Namespace{Inode: ns.Inode(), Name: ns.Name(), Do: ns.Do}, 0, 0)
	defer rec.Close()
	// Without --trace the events are read (the reconciliation needs them)
	// but not printed.
	stdout := c.App.Writer
	if !c.Bool("trace") {
		c.App.Writer = io.Discard
	}
	_, err = streamEvents(c, tr, format, rec)
	c.App.Writer = stdout
	if err != nil {
		return err
	}
	return demoSummary(c, format, rec, d)
}

// printDemoListeners shows, per listener, what synq counted in the kernel
// and the drops it attributes.
func printDemoListeners(w io.Writer, ls []reconcile.ListenerReport) {
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LISTENER\tENQUEUED\tACCEPTED\tACK-OVERFLOW\tSYNACK-RETRANS\tLISTEN-DROPS\tACCEPT-Q NOW")
	for _, l := range ls {
		name, queue := l.Endpoint.String(), "-"
		if l.ID == 0 {
			name = "(listener unknown)"
		}
		if l.QueueKnown && !l.Closed {
			queue = fmt.Sprintf("%d/%d", l.AcceptQueueLen, l.AcceptQueueMax)
		}
		drops := fmt.Sprint(l.ListenDrops)
		if !l.ListenDropsExact {
			drops = "~" + drops
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%s\n", name, l.Counts.Enqueue, l.Counts.Accept, l.Counts.AckOverflow,
			l.Counts.SynackRetrans, drops, queue)
	}
	tw.Flush()
}
