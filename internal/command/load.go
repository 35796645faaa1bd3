package command

import (
	"errors"
	"io"

	"github.com/synq-trace/synq/tracer"
)

// errInterrupted: Ctrl-C (or SIGTERM, SIGHUP) while loading.
var errInterrupted = errors.New("interrupted while loading: nothing attached")

// whileLoading runs load, which does not watch for Ctrl-C (parsing the
// kernel's BTF, the verifier), and returns as soon as interrupted is closed:
// Ctrl-C works during every load. What load returns after that is closed.
// A nil interrupted waits for the load.
func whileLoading[T io.Closer](interrupted <-chan struct{}, load func() (T, error)) (T, error) {
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
	case <-interrupted:
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
func newSnapshotter(env Env) (*tracer.Snapshotter, error) {
	return whileLoading(env.Interrupted, func() (*tracer.Snapshotter, error) { return tracer.NewSnapshotter(env.BTF) })
}
