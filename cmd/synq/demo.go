package main

import (
	"time"

	"github.com/synq-trace/synq/internal/command"
	"github.com/synq-trace/synq/internal/demo"
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
	format, cfg, _, err := eventFlags(c)
	if err != nil {
		return err
	}
	if c.Duration("duration") <= 0 {
		return usagef("invalid --duration %v: must be positive", c.Duration("duration"))
	}
	if b := c.Int("slow-backlog"); b < 1 || b > 65535 {
		return usagef("invalid --slow-backlog %d: want 1-65535", b)
	}
	return command.Demo(c.Context, env(c), command.DemoOptions{Format: format, Tracer: cfg, Duration: c.Duration("duration"),
		Trace: c.Bool("trace"), SlowBacklog: c.Int("slow-backlog"), Acceptor: demo.SpawnAcceptor(c.App.ErrWriter, demoServerViaEnv)})
}
