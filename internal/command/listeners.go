package command

import (
	"slices"

	"github.com/synq-trace/synq/internal/aggregate"
	"github.com/synq-trace/synq/internal/netns"
	"github.com/synq-trace/synq/internal/owner"
	"github.com/synq-trace/synq/internal/render"
)

// ListenersOptions are listeners' flags, checked.
type ListenersOptions struct {
	Format render.Format
	Port   uint16    // --port, 0 for every port
	Only   *netns.NS // --netns, nil for every namespace
	Workload
}

// Listeners prints a snapshot of every listening socket with its owners.
func Listeners(env Env, o ListenersOptions) error {
	// The walk of every process's fds (the owners) runs beside the
	// snapshot: with 10k listeners each takes about as long as the other.
	idx := make(chan map[uint64][]owner.Proc, 1)
	go func() { idx <- owner.Index("/proc", nil) }()
	ls, err := snapshotAll(env, o.Only)
	if err != nil {
		return err
	}
	want := map[uint64]bool{}
	for _, l := range ls {
		want[l.Inode] = true
	}
	r := o.resolver(env)
	defer r.Close()
	// With cgroups and identities, as top and latency.
	owners := aggregate.OwnersIndexed("/proc", <-idx, want)
	aggregate.Resolve(owners, r)
	names := netns.Names()
	rows := render.NewListenerRows(ls, o.Port, owners, names)
	if !o.Filter.Empty() {
		rows = slices.DeleteFunc(rows, func(row render.ListenerRow) bool { return !o.selects(row.Owners) })
		if len(rows) == 0 {
			return o.noMatch(o.Port)
		}
	}
	return render.WriteListeners(env.Stdout, o.Format, rows)
}
