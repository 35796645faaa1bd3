package main

import (
	"time"

	"github.com/synq-trace/synq/internal/command"
	"github.com/urfave/cli/v2"
)

// exitFound is doctor's exit status when it found something: distinct from
// 1 (runtime error) and 2 (usage).
const exitFound = 3

func doctorCommand() *cli.Command {
	return &cli.Command{
		Name:  "doctor",
		Usage: "watch every listener for a while, then name the limit that binds and what to change",
		Description: "Observes every listener (or those of --netns, --port and the workload filters) for --duration with the counters\n" +
			"synq top uses, reads each namespace's somaxconn, tcp_max_syn_backlog, tcp_syncookies and\n" +
			"tcp_max_tw_buckets, its TCP socket states and the owning processes' /proc state, then prints\n" +
			"findings, worst first: the evidence (synq's numbers next to the kernel's own counters over the\n" +
			"same window), the limit that binds and one action. A healthy listener gets one line.\n" +
			"Exit status: 0 nothing found, 3 something found, 1 runtime error, 2 bad input.",
		Flags: withWorkload(
			flagOutput, flagNetns, flagPort, flagBTF,
			&cli.DurationFlag{Name: "duration", Aliases: []string{"d"}, Value: 10 * time.Second, Usage: "observe for this long (at least 100ms)"},
			flagTier,
		),
		Action: runDoctor,
	}
}

func runDoctor(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	format, err := outputFormat(c)
	if err != nil {
		return err
	}
	d := c.Duration("duration")
	if d < minInterval {
		return usagef("invalid --duration %v: want at least %s", d, minInterval)
	}
	cfg, only, err := tracerConfig(c, nil)
	if err != nil {
		return err
	}
	wl, err := workload(c)
	if err != nil {
		return err
	}
	return command.Doctor(c.Context, env(c), command.DoctorOptions{Format: format, Duration: d, Tracer: cfg, Only: only, Workload: wl})
}
