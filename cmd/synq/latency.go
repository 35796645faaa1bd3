package main

import (
	"github.com/synq-trace/synq/internal/aggregate"
	"github.com/synq-trace/synq/internal/command"
	"github.com/synq-trace/synq/tracer"
	"github.com/urfave/cli/v2"
)

func latencyCommand() *cli.Command {
	return &cli.Command{
		Name:  "latency",
		Usage: "accept latency per listener or port as log2 histograms with p50/p90/p99/max, and the accept-queue depth at enqueue",
		Flags: withWorkload(
			flagOutput, flagNetns, flagPort, flagBTF, flagSample,
			&cli.StringFlag{Name: "by", Value: string(aggregate.ByListener), Usage: "listener (each socket, SO_REUSEPORT members apart) or port"},
			&cli.DurationFlag{Name: "duration", Usage: "stop after this long (default: until Ctrl-C)"},
			flagTier,
		),
		Action: runLatency,
	}
}

func runLatency(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	format, err := outputFormat(c)
	if err != nil {
		return err
	}
	by, err := aggregate.ParseGroupBy(c.String("by"))
	if err != nil {
		return usageErr(err)
	}
	d := c.Duration("duration")
	if d < 0 {
		return usagef("invalid --duration %v: must be positive", d)
	}
	cfg, only, err := tracerConfig(c, []tracer.Kind{tracer.KindAccept, tracer.KindEnqueue})
	if err != nil {
		return err
	}
	wl, err := workload(c)
	if err != nil {
		return err
	}
	return command.Latency(c.Context, env(c), command.LatencyOptions{Format: format, By: by, Duration: d, Tracer: cfg, Only: only, Workload: wl})
}
