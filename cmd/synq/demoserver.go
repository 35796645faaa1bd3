package main

import (
	"fmt"
	"net"
	"os"

	"github.com/synq-trace/synq/internal/demo"
	"github.com/urfave/cli/v2"
)

// demoServerCommand is the demo's server process (hidden, demo.SpawnAcceptor
// runs it): demo.AcceptLoop on the listening socket inherited as fd 3 until
// its stdin closes, then "accepts N".
func demoServerCommand() *cli.Command {
	return &cli.Command{
		Name:   "demo-server",
		Hidden: true,
		Flags: []cli.Flag{
			&cli.DurationFlag{Name: "delay"},
			&cli.DurationFlag{Name: "jitter"},
		},
		Action: func(c *cli.Context) error {
			f := os.NewFile(3, "listener")
			if f == nil {
				return usagef("demo-server: no listening socket on fd 3")
			}
			ln, err := net.FileListener(f)
			f.Close()
			if err != nil {
				return usagef("demo-server: fd 3: %v", err)
			}
			n := demo.AcceptLoop(ln, os.Stdin, c.Duration("delay"), c.Duration("jitter"))
			fmt.Fprintf(c.App.Writer, "accepts %d\n", n)
			return nil
		},
	}
}

// demoServerViaEnv: the test binary is synq only through TestMain's
// SYNQ_TEST_MAIN_ARGS; set by the tests.
var demoServerViaEnv bool
