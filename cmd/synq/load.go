package main

import (
	"context"
	"errors"
	"io"

	"github.com/synq-trace/synq/tracer"
	"github.com/urfave/cli/v2"
)

// btfPath validates --btf before anything is loaded: a device, FIFO or
// directory, or a file of a size no BTF has, is bad input (exit 2). A path
// that does not exist is left to loading ("no kernel BTF", exit 1).
func btfPath(c *cli.Context) (string, error) {
	p := c.String("btf")
	if c.IsSet("btf") && p == "" {
		return "", usagef("invalid --btf \"\": want a BTF file")
	}
	if p == "" {
		return "", nil
	}
	if err := tracer.CheckBTFFile(p); err != nil {
		return "", usagef("invalid --btf: %v", err)
	}
	return p, nil
}

// errInterrupted: Ctrl-C (or SIGTERM, SIGHUP) while loading.
var errInterrupted = errors.New("interrupted while loading: nothing attached")

// whileLoading runs load, which does not watch ctx (parsing the kernel's
// BTF, the verifier), and returns as soon as ctx is done: Ctrl-C works
// during every load. What load returns after that is closed.
func whileLoading[T io.Closer](ctx context.Context, load func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := load()
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		go func() {
			if r := <-done; r.err == nil {
				r.v.Close()
			}
		}()
		var zero T
		return zero, errInterrupted
	}
}

// newSnapshotter loads the iter/tcp program, interruptibly.
func newSnapshotter(ctx context.Context, btfPath string) (*tracer.Snapshotter, error) {
	return whileLoading(ctx, func() (*tracer.Snapshotter, error) { return tracer.NewSnapshotter(btfPath) })
}
