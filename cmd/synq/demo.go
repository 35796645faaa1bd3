package main

import (
	"fmt"
	"time"

	"github.com/synq-trace/synq/internal/demo"
	"github.com/synq-trace/synq/internal/ledger"
	"github.com/urfave/cli/v2"
)

func demoCommand() *cli.Command {
	return &cli.Command{
		Name: "demo",
		Usage: "run a slow listener (backlog 8) and a healthy one under load in netns synq-demo, " +
			"trace them, and reconcile the drops with the kernel's counters",
		Flags: []cli.Flag{
			flagOutput, flagBTF,
			&cli.DurationFlag{Name: "duration", Value: 10 * time.Second, Usage: "how long to run"},
			flagTier,
			&cli.StringFlag{Name: "events", Usage: "comma list of event kinds to print"},
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
	d, err := demo.Run(c.Context, demo.Options{})
	if err != nil {
		return fmt.Errorf("start demo: %w", err)
	}
	defer d.Close()
	ns := d.Netns()
	fmt.Fprintf(c.App.ErrWriter, "synq: demo in netns %s (inode %d): slow listener 127.0.0.1:%d (backlog 8), healthy 127.0.0.1:%d\n",
		ns.Name(), ns.Inode(), d.Ports().Slow, d.Ports().Healthy)

	cfg.Netns = uint32(ns.Inode())
	tr, err := openTracer(c, cfg)
	if err != nil {
		return err
	}
	defer tr.Close()
	rec := startReconcile(c, tr, &ledger.Namespace{Inode: ns.Inode(), Name: ns.Name(), Do: ns.Do}, 0, 0)
	defer rec.Close()
	if _, err := streamEvents(c, tr, format, rec); err != nil {
		return err
	}
	// The reconciliation, with its per-listener table.
	return rec.final(c, format, nil)
}
