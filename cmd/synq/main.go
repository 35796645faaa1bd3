// Command synq traces the TCP listen path: SYN queue, accept queue, drops
// and accept latency, per listener, reconciled with the kernel's counters.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args))
}

func run(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	app := newApp()
	if err := app.RunContext(ctx, args); err != nil {
		fmt.Fprintf(os.Stderr, "synq: %v\n", err)
		return exitCode(err)
	}
	return 0
}

func newApp() *cli.App {
	return &cli.App{
		Name:    "synq",
		Usage:   "see where the TCP listen path loses connections",
		Version: version,
		Commands: []*cli.Command{
			traceCommand(),
			listenersCommand(),
		},
		// urfave/cli prints usage errors itself and exits 1 by default; we
		// want one line and exit code 2 for every bad input.
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageErr(err)
		},
		HideHelpCommand: true,
	}
}

// usageError marks bad input from the operator: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usageErr(err error) error { return usageError{err} }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

func exitCode(err error) int {
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}
