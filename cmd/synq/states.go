package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/synq-trace/synq/internal/command"
	"github.com/synq-trace/synq/internal/netns"
	"github.com/synq-trace/synq/internal/sockstate"
)

func statesCommand() *cli.Command {
	return &cli.Command{
		Name:  "states",
		Usage: "count TCP sockets by state (and local port) per netns, with hints",
		Description: fmt.Sprintf("Counts IPv4 and IPv6 TCP sockets with sock_diag, like ss -tan. Request sockets\n"+
			"(SYN received, final ACK awaited) are shown as NEW_SYN_RECV; ss calls them SYN-RECV.\n"+
			"Hints appear from %d TIME_WAIT, %d SYN_RECV+NEW_SYN_RECV or %d CLOSE_WAIT sockets.",
			sockstate.DefaultThresholds.TimeWait, sockstate.DefaultThresholds.SynRecv, sockstate.DefaultThresholds.CloseWait),
		Flags: []cli.Flag{
			flagOutput,
			flagNetns,
			&cli.BoolFlag{Name: "all-netns", Usage: "every network namespace (named or with a process in it)"},
			&cli.StringFlag{Name: "by", Value: "state", Usage: "break down by `state` or by local port and state (port)"},
		},
		Action: runStates,
	}
}

func runStates(c *cli.Context) error {
	format, err := outputFormat(c)
	if err != nil {
		return err
	}
	by := c.String("by")
	switch {
	case by != "state" && by != "port":
		return usagef("unknown --by %q (want state or port)", by)
	case c.NArg() > 0:
		return noArgs(c)
	case c.Bool("all-netns") && c.IsSet("netns"):
		return usagef("--netns and --all-netns exclude each other")
	}
	var all []netns.NS
	switch ns, ok, err := netnsFilter(c); {
	case err != nil:
		return err
	case ok:
		all = []netns.NS{ns}
	case c.Bool("all-netns"):
		if all, err = netns.All(); err != nil {
			return err
		}
	default:
		cur, err := netns.Current()
		if err != nil {
			return err
		}
		all = []netns.NS{cur}
	}
	return command.States(env(c), command.StatesOptions{Format: format, NS: all, By: by})
}
