// Command synq traces the TCP listen path: SYN queue, accept queue, drops
// and accept latency, per listener, reconciled with the kernel's counters.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/synq-trace/synq/internal/command"
	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=..."; see
// resolveVersion for builds without (cliux.go).
var version = "dev"

func main() {
	os.Exit(run(os.Args))
}

func run(args []string) int {
	return runWith(args, os.Stdout, os.Stderr)
}

// runWith runs synq with its output on stdout and diagnostics on stderr, and
// returns the exit code: 0, 1 for a failure, 2 for bad input, 3 when doctor
// found something.
func runWith(args []string, stdout, stderr io.Writer) int {
	// Ctrl-C, SIGTERM and SIGHUP (terminal closed) cancel the context: commands return, and their
	// deferred Close detaches every program and link.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()

	app := newApp()
	app.Writer, app.ErrWriter = stdout, stderr
	if err := app.RunContext(ctx, args); err != nil {
		if errors.Is(err, command.ErrFound) {
			return exitCode(err) // doctor's findings are on stdout
		}
		fmt.Fprintf(stderr, "synq: %v\n", err)
		return exitCode(err)
	}
	return 0
}

func newApp() *cli.App {
	app := &cli.App{
		Name:    "synq",
		Usage:   "see where the TCP listen path loses connections",
		Version: version,
		Commands: []*cli.Command{
			traceCommand(),
			listenersCommand(),
			demoCommand(),
			statsCommand(),
			statesCommand(),
			topCommand(),
			latencyCommand(),
			serveCommand(),
			doctorCommand(),
		},
		// urfave/cli prints usage errors itself and exits 1 by default; we
		// want one line and exit code 2 for every bad input.
		OnUsageError: func(c *cli.Context, err error, _ bool) error {
			return usageErr(flagValueErr(c.App, err))
		},
		HideHelpCommand: true,
	}
	for _, cmd := range app.Commands {
		cmd.OnUsageError = app.OnUsageError
		cmd.Flags = strictFlags(cmd.Flags)
	}
	polishApp(app)
	app.Action = func(c *cli.Context) error {
		if c.NArg() > 0 {
			return usagef("unknown command %q (see synq --help)", c.Args().First())
		}
		return cli.ShowAppHelp(c)
	}
	return app
}

// usageError marks bad input from the operator: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usageErr(err error) error { return usageError{err} }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

func exitCode(err error) int {
	if errors.Is(err, command.ErrFound) {
		return exitFound
	}
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}
