package main

import (
	"time"

	"github.com/synq-trace/synq/internal/command"
	"github.com/urfave/cli/v2"
)

func traceCommand() *cli.Command {
	return &cli.Command{
		Name:  "trace",
		Usage: "stream listen-path events: SYNs, drops, cookies, enqueues, accepts with latency",
		Flags: withWorkload(
			flagOutput, flagNetns, flagPort, flagBTF, flagSample,
			&cli.StringFlag{Name: "events", Usage: "comma list of event kinds (syn, syn-drop, cookie, synack-retrans, enqueue, ack-overflow, accept)"},
			flagTier,
			&cli.DurationFlag{Name: "duration", Usage: "stop after this long (default: until Ctrl-C)"},
			&cli.DurationFlag{Name: "reconcile", Usage: "also reconcile with the kernel's counters every `D` (e.g. 5s); always done on exit"},
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "report every hook and why better tiers were skipped"},
		),
		Action: runTrace,
	}
}

func runTrace(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	format, cfg, only, err := eventFlags(c)
	if err != nil {
		return err
	}
	if c.Duration("duration") < 0 {
		return usagef("invalid --duration %v: must be positive", c.Duration("duration"))
	}
	if every := c.Duration("reconcile"); every < 0 || c.IsSet("reconcile") && every < 100*time.Millisecond {
		return usagef("invalid --reconcile %v: want an interval of at least 100ms", every)
	}
	wl, err := workload(c)
	if err != nil {
		return err
	}
	return command.Trace(c.Context, env(c), command.TraceOptions{Format: format, Tracer: cfg, Only: only,
		Duration: c.Duration("duration"), Reconcile: c.Duration("reconcile"), Workload: wl})
}
