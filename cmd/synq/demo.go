package main

import (
	"time"

	"github.com/synq-trace/synq/internal/command"
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
	format, cfg, _, err := eventFlags(c)
	if err != nil {
		return err
	}
	if c.Duration("duration") <= 0 {
		return usagef("invalid --duration %v: must be positive", c.Duration("duration"))
	}
	return command.Demo(c.Context, env(c), command.DemoOptions{Format: format, Tracer: cfg, Duration: c.Duration("duration")})
}
