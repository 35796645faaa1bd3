// Package command runs each synq command once cmd/synq has checked its
// flags: it opens the tracer, reads the kernel, and hands what it read to
// internal/render, the one place output is formatted. cmd/synq is flags and
// wiring only.
package command

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/synq-trace/synq/internal/render"
	"github.com/synq-trace/synq/tracer"
)

// Env is where a command writes and how it reaches the kernel: the flags
// every command shares.
type Env struct {
	Stdout  io.Writer // the command's output
	Stderr  io.Writer // diagnostics: the tier, summaries, warnings
	BTF     string    // --btf: the kernel's BTF file, "" for the default
	Verbose bool      // --verbose: every hook and why better tiers were skipped
	// Interrupted is closed on Ctrl-C (SIGTERM, SIGHUP): a load (BTF, the
	// verifier) in progress is abandoned. nil: loads are waited for.
	Interrupted <-chan struct{}
}

// ringDrainWait lets the ring-buffer reader (which polls every 100 ms) deliver
// the events of an interval before the interval is closed.
const ringDrainWait = 150 * time.Millisecond

// openTracer opens the tracer (cfg from tracerConfig) and says which tier it
// picked.
func openTracer(env Env, cfg tracer.Config) (*tracer.Tracer, error) {
	tr, err := openTracerQuiet(env, cfg)
	if err != nil {
		return nil, err
	}
	render.ReportTier(env.Stderr, tr.Info(), env.Verbose)
	return tr, nil
}

// openTracerQuiet opens without the "attached" line, for callers that set
// up more (baselines) before saying so.
func openTracerQuiet(env Env, cfg tracer.Config) (*tracer.Tracer, error) {
	tr, err := whileLoading(env.Interrupted, func() (*tracer.Tracer, error) { return tracer.Open(cfg) })
	if err != nil {
		return nil, kernelErr(err)
	}
	return tr, nil
}

// kernelErr words tracer errors for the operator.
func kernelErr(err error) error {
	switch {
	case errors.Is(err, tracer.ErrPrivileges), errors.Is(err, tracer.ErrNoBTF), errors.Is(err, tracer.ErrBTFFile),
		errors.Is(err, errInterrupted):
		return err
	}
	return fmt.Errorf("attach to the kernel: %w", err)
}
