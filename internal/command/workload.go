package command

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/synq-trace/synq/internal/aggregate"
	"github.com/synq-trace/synq/internal/identity"
	"github.com/synq-trace/synq/internal/netns"
	"github.com/synq-trace/synq/internal/reconcile"
	"github.com/synq-trace/synq/internal/render"
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

// selectedIDs says, for each listener of ls by id, whether the filter
// selects it.
func (w Workload) selectedIDs(ls []tracer.Listener, owners map[uint64][]aggregate.Owner) map[tracer.ListenerID]bool {
	out := map[tracer.ListenerID]bool{}
	for _, l := range ls {
		out[l.ID] = w.selects(owners[l.Inode])
	}
	return out
}

// namer names the listeners of reconcile reports and of trace's events,
// and selects trace's events by workload. Owners are read again when a
// listener appears whose socket was not indexed (OwnerCache), never per
// event: an event's listener is looked up in what the last listing found.
type namer struct {
	w    Workload
	only *netns.NS
	env  Env

	// listing serializes listings (the slow part: a snapshot and the
	// owners' walk) and guards owners and listed.
	listing sync.Mutex
	owners  aggregate.OwnerCache
	listed  time.Time
	busy    atomic.Bool // a listing in the background is under way

	mu       sync.Mutex // guards what the readers look up
	selected map[tracer.ListenerID]bool
	// named: every listener id a listing looked for, with its workload (nil
	// when no owner names it, or when the listing did not show it: it is
	// not looked for again).
	named  map[tracer.ListenerID]*render.EventWorkload
	wanted map[tracer.ListenerID]bool // ids seen in events, not yet listed
}

func newNamer(env Env, w Workload, only *netns.NS, r *identity.Resolver) *namer {
	// Its listings say nothing: a namespace trace cannot list is said by
	// the reconciliation's walk, once.
	env.Stderr = io.Discard
	return &namer{w: w, only: only, env: env, owners: aggregate.OwnerCache{MaxAge: 10 * time.Second, Resolver: r},
		named: map[tracer.ListenerID]*render.EventWorkload{}, wanted: map[tracer.ListenerID]bool{}}
}

// name sets the owners of a report's listeners; with a filter, only the
// selected listeners stay.
func (n *namer) name(rep *reconcile.Report) {
	inodes := map[uint64]bool{}
	for _, ns := range rep.Netns {
		for _, l := range ns.Listeners {
			if l.Inode != 0 && !l.Closed {
				inodes[l.Inode] = true
			}
		}
	}
	n.listing.Lock()
	owners := n.owners.Lookup(time.Now(), inodes)
	n.listing.Unlock()
	for i := range rep.Netns {
		ls := rep.Netns[i].Listeners
		for j := range ls {
			ls[j].Owners = []aggregate.Owner{}
			if inodes[ls[j].Inode] {
				ls[j].Owners = append(ls[j].Owners, owners[ls[j].Inode]...)
			}
		}
		if !n.w.Filter.Empty() {
			rep.Netns[i].Listeners = slices.DeleteFunc(ls, func(l reconcile.ListenerReport) bool {
				return !n.selectedID(l.ID) && !n.w.selects(l.Owners)
			})
		}
	}
}

// refresh lists the listeners, selects and names them (at most every
// 200 ms).
func (n *namer) refresh() {
	n.listing.Lock()
	defer n.listing.Unlock()
	if time.Since(n.listed) < 200*time.Millisecond {
		return
	}
	n.listed = time.Now()
	n.mu.Lock()
	asked := maps.Clone(n.wanted)
	n.mu.Unlock()
	ls, err := snapshotAll(n.env, n.only)
	if err != nil {
		return // the last selection and names stay
	}
	inodes := map[uint64]bool{}
	for _, l := range ls {
		inodes[l.Inode] = true
	}
	owners := n.owners.Lookup(n.listed, inodes)
	sel := n.w.selectedIDs(ls, owners)
	named := make(map[tracer.ListenerID]*render.EventWorkload, len(ls))
	for _, l := range ls {
		var wl *render.EventWorkload
		if os := owners[l.Inode]; len(os) > 0 {
			wl = render.NewEventWorkload(os[0])
		}
		named[l.ID] = wl
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for id, was := range n.selected {
		sel[id] = sel[id] || was // a listener that closed keeps its selection
	}
	n.selected = sel
	for id, wl := range n.named {
		if _, ok := named[id]; !ok {
			named[id] = wl // a listener that closed keeps its name
		}
	}
	for id := range asked {
		if _, ok := named[id]; !ok {
			named[id] = nil // not listed: not looked for again
		}
		delete(n.wanted, id)
	}
	n.named = named
}

func (n *namer) selectedID(id tracer.ListenerID) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.selected[id]
}

// event says trace prints ev: its listener is selected. A listener not seen
// at the last listing (it just opened) lists again, at most every 200 ms;
// events whose listener the hook cannot see (id 0) are not selected.
func (n *namer) event(ev *tracer.Event) bool {
	if n.w.Filter.Empty() {
		return true
	}
	if ev.Listener == 0 {
		return false
	}
	n.mu.Lock()
	sel, known := n.selected[ev.Listener]
	if !known {
		n.wanted[ev.Listener] = true
	}
	n.mu.Unlock()
	if !known {
		n.refresh()
		sel = n.selectedID(ev.Listener)
	}
	return sel
}

// workload names an event's listener as the last listing did. One that no
// listing looked for yet (it opened since) is listed in the background: its
// events until then have no workload; the reader never waits for /proc.
func (n *namer) workload(id tracer.ListenerID) *render.EventWorkload {
	n.mu.Lock()
	wl, known := n.named[id]
	if !known {
		n.wanted[id] = true
	}
	n.mu.Unlock()
	if !known && n.busy.CompareAndSwap(false, true) {
		go func() {
			defer n.busy.Store(false)
			n.listing.Lock()
			wait := 200*time.Millisecond - time.Since(n.listed)
			n.listing.Unlock()
			if wait > 0 {
				time.Sleep(wait)
			}
			n.refresh()
		}()
	}
	return wl
}
