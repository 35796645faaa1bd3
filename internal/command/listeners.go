package command

import (
	"github.com/synq-trace/synq/internal/netns"
	"github.com/synq-trace/synq/internal/owner"
	"github.com/synq-trace/synq/internal/render"
)

// ListenersOptions are listeners' flags, checked.
type ListenersOptions struct {
	Format render.Format
	Port   uint16    // --port, 0 for every port
	Only   *netns.NS // --netns, nil for every namespace
}

// Listeners prints a snapshot of every listening socket with its owners.
func Listeners(env Env, o ListenersOptions) error {
	ls, err := snapshotAll(env, o.Only)
	if err != nil {
		return err
	}
	want := map[uint64]bool{}
	for _, l := range ls {
		want[l.Inode] = true
	}
	owners := owner.Index("/proc", want)
	names := netns.Names()
	return render.WriteListeners(env.Stdout, o.Format, render.NewListenerRows(ls, o.Port, owners, names))
}
