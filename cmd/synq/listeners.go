package main

import (
	"github.com/synq-trace/synq/internal/command"
	"github.com/synq-trace/synq/internal/netns"
	"github.com/urfave/cli/v2"
)

func listenersCommand() *cli.Command {
	return &cli.Command{
		Name:   "listeners",
		Usage:  "snapshot every listening TCP socket in every netns: queues, drops, owner",
		Flags:  withWorkload(flagOutput, flagNetns, flagPort, flagBTF),
		Action: runListeners,
	}
}

func runListeners(c *cli.Context) error {
	format, err := outputFormat(c)
	if err != nil {
		return err
	}
	port, err := portFilter(c)
	if err != nil {
		return err
	}
	ns, nsSet, err := netnsFilter(c)
	if err != nil {
		return err
	}
	var only *netns.NS
	if nsSet {
		only = &ns
	}
	if _, err := btfPath(c); err != nil {
		return err
	}
	wl, err := workload(c)
	if err != nil {
		return err
	}
	return command.Listeners(env(c), command.ListenersOptions{Format: format, Port: port, Only: only, Workload: wl})
}
