package command

import (
	"fmt"

	"github.com/synq-trace/synq/internal/aggregate"
	"github.com/synq-trace/synq/internal/identity"
	"github.com/synq-trace/synq/internal/netns"
	"github.com/synq-trace/synq/tracer"
)

// Workload is the identity flags of the commands that name listeners:
// where the container runtime answers, and which workloads to show.
type Workload struct {
	RuntimeEndpoint string          // --runtime-endpoint, "" for the usual sockets
	Filter          identity.Filter // --pod, --k8s-namespace, --container, --unit
}

// resolver names containers for the command; it says once on stderr when it
// cannot (and the command goes on with cgroup identities).
func (w Workload) resolver(env Env) *identity.Resolver {
	return identity.NewResolver(identity.ResolverConfig{Endpoint: w.RuntimeEndpoint, Warn: env.Stderr})
}

// selects says a listener with these owners is shown: any owner matches.
func (w Workload) selects(owners []aggregate.Owner) bool {
	if w.Filter.Empty() {
		return true
	}
	for _, o := range owners {
		if w.Filter.Match(o.Identity) {
			return true
		}
	}
	return false
}

// ownersOf finds the processes holding the inodes, with their identities.
func ownersOf(inodes map[uint64]bool, r *identity.Resolver) map[uint64][]aggregate.Owner {
	owners := aggregate.Owners("/proc", inodes)
	aggregate.Resolve(owners, r)
	return owners
}

// noMatch is the error of a filter that selects no listener.
func (w Workload) noMatch(port uint16) error {
	on := ""
	if port != 0 {
		on = fmt.Sprintf(" on port %d", port)
	}
	return fmt.Errorf("no listener%s matches %s", on, w.Filter)
}

// check refuses to start when the filter selects no listener now (a typo
// would otherwise show an empty screen for ever).
func (w Workload) check(env Env, only *netns.NS, port uint16, r *identity.Resolver) error {
	if w.Filter.Empty() {
		return nil
	}
	ls, err := snapshotAll(env, only)
	if err != nil {
		return err
	}
	inodes := map[uint64]bool{}
	for _, l := range ls {
		if port == 0 || l.Port == port {
			inodes[l.Inode] = true
		}
	}
	owners := ownersOf(inodes, r)
	for ino := range inodes {
		if w.selects(owners[ino]) {
			return nil
		}
	}
	return w.noMatch(port)
}

// selectedIDs are the listeners of ls the filter selects, by id.
func (w Workload) selectedIDs(ls []tracer.Listener, owners map[uint64][]aggregate.Owner) map[tracer.ListenerID]bool {
	out := map[tracer.ListenerID]bool{}
	for _, l := range ls {
		if w.selects(owners[l.Inode]) {
			out[l.ID] = true
		}
	}
	return out
}
