package exporter

import (
	"fmt"
	"sync"
	"time"

	"github.com/synq-trace/synq/internal/aggregate"
	"github.com/synq-trace/synq/internal/identity"
	"github.com/synq-trace/synq/internal/ledger"
	"github.com/synq-trace/synq/internal/netns"
	"github.com/synq-trace/synq/tracer"
)

// Source is what the exporter reads at scrape time. The kernel implements it
// (NewKernelSource); tests use a fake.
type Source interface {
	// Info says which tier is attached: it decides which metrics and drop
	// reasons exist.
	Info() tracer.Info
	// Counts are the per-listener kernel counters since the tracer opened.
	Counts() (map[tracer.ListenerID]tracer.Counts, error)
	// Histograms are the per-listener in-kernel distributions (accept
	// latency) since the tracer opened.
	Histograms() (map[tracer.ListenerID]*tracer.Histogram, error)
	// Stats counts what the event stream lost.
	Stats() (tracer.Stats, error)
	// Walk is a snapshot of every listening socket of the watched
	// namespaces and of each one's SNMP/netstat counters, read in the same
	// visit (ledger.Walker.Walk with MIB): a nil View is a failed walk.
	Walk() (*ledger.View, error)
	// Owners are the processes holding each listening socket (by inode),
	// named (unit, container, pod): cached, so that a scrape does not walk
	// /proc (aggregate.OwnerCache's policy). The report says whether the
	// container runtime was asked for names and why it could not answer.
	Owners(now time.Time, inodes map[uint64]bool) (map[uint64][]aggregate.Owner, OwnerReport)
}

// OwnerReport says how the names of a lookup came about.
type OwnerReport struct {
	// Asked: an owner is a Kubernetes pod's (its cgroup names a pod UID),
	// whose names only the container runtime's CRI can give. Containers
	// outside Kubernetes (plain docker, podman, nerdctl) are not in the
	// CRI: a host that runs them, with or without a CRI socket (docker's
	// containerd ships its CRI plugin disabled), is not degraded.
	Asked bool
	// Err: why it could not answer (no socket, refused, unknown
	// container): the owners are named from their cgroups alone.
	Err error
}

// KernelSource reads a live tracer and the iter/tcp snapshotter.
type KernelSource struct {
	tr      *tracer.Tracer
	self    netns.NS          // the reconciled namespace
	held    *ledger.Namespace // it, held open, with --netns
	release func()
	// Walker lists the listeners; set its Report to hear, once, of a
	// namespace it could not see.
	Walker *ledger.Walker
	// Resolver, if set, names containers and pods from the container
	// runtime's CRI API (set it before the first scrape).
	Resolver *identity.Resolver

	ownersMu sync.Mutex
	owners   aggregate.OwnerCache
}

// ownerMaxAge: owners are re-read from /proc when a listener appears whose
// socket was not indexed, or this long after the last read (a socket handed
// to another process, a process that exited).
const ownerMaxAge = 30 * time.Second

// Owners reads the owners through an aggregate.OwnerCache, which names them
// from their cgroups and the Resolver. The runtime counts as asked when an
// owner's cgroup names a Kubernetes pod, or a container and a runtime socket
// was found (a docker host without a CRI socket is not degraded: there are
// no pod names to miss).
func (s *KernelSource) Owners(now time.Time, inodes map[uint64]bool) (map[uint64][]aggregate.Owner, OwnerReport) {
	s.ownersMu.Lock()
	defer s.ownersMu.Unlock()
	s.owners.MaxAge, s.owners.Resolver = ownerMaxAge, s.Resolver
	owners := s.owners.Lookup(now, inodes)
	var rep OwnerReport
	if s.Resolver == nil {
		return owners, rep
	}
	st := s.Resolver.Status()
	for ino := range inodes {
		for _, o := range owners[ino] {
			rep.Asked = rep.Asked || o.PodUID != ""
		}
	}
	if rep.Asked {
		rep.Err = st.Err
	}
	return owners, rep
}

// NewKernelSource watches only (nil: every namespace) and reconciles with
// only, or with synq's own namespace. The caller keeps ownership of tr and
// snap.
func NewKernelSource(tr *tracer.Tracer, snap *tracer.Snapshotter, only *netns.NS) (*KernelSource, error) {
	s := &KernelSource{tr: tr, Walker: &ledger.Walker{Lister: snap, MIB: true}, release: func() {}}
	if only != nil {
		// Held open: `ip netns del` while processes use it loses nothing.
		ns, release, err := ledger.Hold(*only)
		if err != nil {
			return nil, err
		}
		s.self, s.held, s.release = *only, &ns, release
		s.Walker.Only = &ns
	} else {
		cur, err := netns.Current()
		if err != nil {
			return nil, err
		}
		s.self = cur
	}
	return s, nil
}

// SelectMIB makes the walk read the counters of the namespaces want
// returns true for (by inode) only.
func (s *KernelSource) SelectMIB(want func(netns uint32) bool) {
	s.Walker.MIBOf = func(ns ledger.Namespace, _ []tracer.Listener) bool { return want(uint32(ns.Inode)) }
}

// Reconciled is the namespace whose kernel counters the exporter reports.
func (s *KernelSource) Reconciled() netns.NS { return s.self }

func (s *KernelSource) Info() tracer.Info { return s.tr.Info() }

func (s *KernelSource) Counts() (map[tracer.ListenerID]tracer.Counts, error) { return s.tr.Counts() }

func (s *KernelSource) Histograms() (map[tracer.ListenerID]*tracer.Histogram, error) {
	return s.tr.Histograms()
}

func (s *KernelSource) Stats() (tracer.Stats, error) { return s.tr.Stats() }

// Walk enters each namespace in turn: the kernel binds a TCP iterator to
// the namespace of the thread that opens it, and /proc/thread-self/net shows
// its counters. Entering a namespace other than
// synq's own needs CAP_SYS_ADMIN. Namespaces synq cannot list are in the
// View with their reason, said once by the Walker: their listeners still
// count (named by events), without queue gauges.
func (s *KernelSource) Walk() (*ledger.View, error) { return s.Walker.Walk() }

// Healthy says why what synq watches is no longer what the operator asked
// for: the --netns namespace has no process and no name left (only synq
// holds it). Nil otherwise.
func (s *KernelSource) Healthy() error {
	if s.held != nil && s.held.Orphaned() {
		return fmt.Errorf("netns %s: no process and no /run/netns name refers to it any more (synq holds it open)", s.held)
	}
	return nil
}

// Close releases the namespace held open.
func (s *KernelSource) Close() { s.release() }
