package main

import (
	"time"

	"github.com/synq-trace/synq/internal/aggregate"
	"github.com/synq-trace/synq/internal/command"
	"github.com/urfave/cli/v2"
)

func topCommand() *cli.Command {
	return &cli.Command{
		Name:  "top",
		Usage: "live table of every listener: SYN, accept and drop rates by reason, queues now/peak/max, accept latency",
		Flags: withWorkload(
			flagOutput, flagSample, flagNetns, flagPort, flagBTF,
			&cli.DurationFlag{Name: "interval", Aliases: []string{"i"}, Value: time.Second, Usage: "refresh every (at least 100ms)"},
			&cli.BoolFlag{Name: "once", Usage: "print one refresh after --interval and exit"},
			&cli.StringFlag{Name: "sort", Value: string(aggregate.SortDrops), Usage: "drops, syn, accepts, latency or queue"},
			flagTier,
		),
		Action: runTop,
	}
}

func runTop(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	format, err := outputFormat(c)
	if err != nil {
		return err
	}
	interval := c.Duration("interval")
	if interval < minInterval {
		return usagef("invalid --interval %v: want at least %s", interval, minInterval)
	}
	key, err := aggregate.ParseSortKey(c.String("sort"))
	if err != nil {
		return usageErr(err)
	}
	cfg, only, err := tracerConfig(c, nil)
	if err != nil {
		return err
	}
	wl, err := workload(c)
	if err != nil {
		return err
	}
	return command.Top(c.Context, env(c), command.TopOptions{Format: format, Interval: interval, Once: c.Bool("once"),
		Sort: key, Tracer: cfg, Only: only, Workload: wl})
}
