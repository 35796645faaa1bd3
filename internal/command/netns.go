package command

import (
	"fmt"

	"github.com/synq-trace/synq/internal/ledger"
	"github.com/synq-trace/synq/internal/netns"
	"github.com/synq-trace/synq/tracer"
)

// holdNetns holds --netns open for the run (nil: every namespace): `ip netns
// del` while processes use it does not lose it.
func holdNetns(only *netns.NS) (*ledger.Namespace, func(), error) {
	if only == nil {
		return nil, func() {}, nil
	}
	n, release, err := ledger.Hold(*only)
	if err != nil {
		return nil, nil, err
	}
	return &n, release, nil
}

// newWalker lists the listeners of only (nil: every namespace) on port (0:
// all), and says once on stderr what it could not see. The caller calls
// release when done.
func newWalker(env Env, snap *tracer.Snapshotter, only *netns.NS, port uint16) (w *ledger.Walker, release func(), err error) {
	held, release, err := holdNetns(only)
	if err != nil {
		return nil, nil, err
	}
	return &ledger.Walker{Lister: snap, Port: port, Only: held, Report: reportOnce(env)}, release, nil
}

// reportOnce prints what a walk could not see ("synq: cannot list the
// listeners of netns X: why") on stderr; the Walker says each once.
func reportOnce(env Env) func(string) {
	return func(msg string) { fmt.Fprintf(env.Stderr, "synq: %s\n", msg) }
}

// snapshotAll lists listeners in the given namespaces (all when nil), and
// says once on stderr which namespaces it could not list, and why.
func snapshotAll(env Env, only *netns.NS) ([]tracer.Listener, error) {
	snap, err := newSnapshotter(env)
	if err != nil {
		return nil, kernelErr(err)
	}
	defer snap.Close()
	w, release, err := newWalker(env, snap, only, 0)
	if err != nil {
		return nil, err
	}
	defer release()
	v, err := w.Walk()
	if err != nil {
		return nil, err
	}
	return v.Listeners(), nil
}
