package main

import (
	"github.com/urfave/cli/v2"

	"github.com/synq-trace/synq/internal/command"
	"github.com/synq-trace/synq/internal/netns"
	"github.com/synq-trace/synq/internal/netstat"
)

func statsCommand() *cli.Command {
	return &cli.Command{
		Name:      "stats",
		Usage:     "the kernel's TCP/IP counters (netstat -s, nstat) with node_exporter names and meanings",
		ArgsUsage: "[COUNTER...]",
		Description: "Without COUNTER, shows synq's default set (listen queue overflows, SYN cookies,\n" +
			"retransmits, ...). A COUNTER is TcpExt.ListenOverflows, TcpExtListenOverflows,\n" +
			"node_netstat_TcpExt_ListenOverflows or just ListenOverflows. Counters this kernel\n" +
			"does not have are shown as \"not on this kernel\", never as 0.\n" +
			"With --interval, prints per-second rates every interval until Ctrl-C or --count.",
		Flags: []cli.Flag{
			flagOutput,
			flagNetns,
			&cli.BoolFlag{Name: "all", Usage: "every counter of this kernel, plus known ones it lacks"},
			&cli.DurationFlag{Name: "interval", Usage: "print rates every `DURATION` (e.g. 1s; at least 100ms)"},
			&cli.IntFlag{Name: "count", Usage: "with --interval, stop after `N` reports"},
		},
		Action: runStats,
	}
}

func runStats(c *cli.Context) error {
	format, err := outputFormat(c)
	if err != nil {
		return err
	}
	interval := c.Duration("interval")
	if c.IsSet("interval") && interval < minInterval {
		return usagef("invalid --interval %s: want at least %s, e.g. 1s", interval, minInterval)
	}
	count := c.Int("count")
	switch {
	case count < 0:
		return usagef("invalid --count %d: want 1 or more", count)
	case c.IsSet("count") && !c.IsSet("interval"):
		return usagef("--count needs --interval")
	case c.Bool("all") && c.NArg() > 0:
		return usagef("--all takes no counter names")
	}
	ns, ok, err := netnsFilter(c)
	if err != nil {
		return err
	}
	if !ok {
		if ns, err = netns.Current(); err != nil {
			return err
		}
	}
	return command.Stats(c.Context, env(c), command.StatsOptions{Format: format, NS: ns, Interval: interval, Count: count,
		Names: func(s netstat.Snapshot) ([]string, error) { return statsNames(c, s) }})
}

// statsNames picks the counters to show: the arguments, --all, or the
// default set.
func statsNames(c *cli.Context, s netstat.Snapshot) ([]string, error) {
	switch {
	case c.NArg() > 0:
		var names []string
		for _, a := range c.Args().Slice() {
			n, err := netstat.Lookup(s, a)
			if err != nil {
				return nil, usageErr(err)
			}
			names = append(names, n)
		}
		return names, nil
	case c.Bool("all"):
		names := s.Names()
		for _, k := range netstat.Known() {
			if _, ok := s[k]; !ok {
				names = append(names, k)
			}
		}
		netstat.SortNames(names)
		return names, nil
	}
	return netstat.DefaultSet, nil
}
