package exporter

import (
	"errors"
	"fmt"

	"github.com/synq-trace/synq/internal/netns"
	"github.com/synq-trace/synq/internal/netstat"
	"github.com/synq-trace/synq/tracer"
	"golang.org/x/sys/unix"
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
	// Listeners is a snapshot of every listening socket of the watched
	// namespaces. An error with a non-nil list says that some namespaces
	// were left out.
	Listeners() ([]tracer.Listener, error)
	// KernelCounters are the SNMP/netstat counters of the reconciled
	// namespace (synq's own, or --netns).
	KernelCounters() (netstat.Snapshot, error)
}

// KernelSource reads a live tracer and the iter/tcp snapshotter.
type KernelSource struct {
	tr   *tracer.Tracer
	snap *tracer.Snapshotter
	only *netns.NS // nil: every namespace netns.All finds
	self netns.NS  // the reconciled namespace
}

// NewKernelSource watches only (nil: every namespace) and reconciles with
// only, or with synq's own namespace. The caller keeps ownership of tr and
// snap.
func NewKernelSource(tr *tracer.Tracer, snap *tracer.Snapshotter, only *netns.NS) (*KernelSource, error) {
	s := &KernelSource{tr: tr, snap: snap, only: only}
	if only != nil {
		s.self = *only
	} else {
		cur, err := netns.Current()
		if err != nil {
			return nil, err
		}
		s.self = cur
	}
	return s, nil
}

// Reconciled is the namespace whose kernel counters the exporter reports.
func (s *KernelSource) Reconciled() netns.NS { return s.self }

func (s *KernelSource) Info() tracer.Info { return s.tr.Info() }

func (s *KernelSource) Counts() (map[tracer.ListenerID]tracer.Counts, error) { return s.tr.Counts() }

func (s *KernelSource) Histograms() (map[tracer.ListenerID]*tracer.Histogram, error) {
	return s.tr.Histograms()
}

func (s *KernelSource) Stats() (tracer.Stats, error) { return s.tr.Stats() }

// Listeners enters each namespace in turn: the kernel binds a TCP iterator to
// the namespace of the thread that opens it. Entering a namespace other than
// synq's own needs CAP_SYS_ADMIN. Namespaces that vanish are skipped; ones
// synq may not enter are skipped too, and said in the error returned with
// the other namespaces' listeners. Their listeners still count (named by
// events), without queue gauges.
func (s *KernelSource) Listeners() ([]tracer.Listener, error) {
	var all []netns.NS
	if s.only != nil {
		all = []netns.NS{*s.only}
	} else {
		var err error
		if all, err = netns.All(); err != nil {
			return nil, err
		}
	}
	out := []tracer.Listener{}
	denied := 0
	for _, ns := range all {
		err := ns.Do(func() error {
			ls, err := s.snap.Listeners()
			out = append(out, ls...)
			return err
		})
		if err != nil && s.only != nil {
			return nil, fmt.Errorf("listeners of netns %s: %w", ns, err)
		}
		if errors.Is(err, unix.EPERM) {
			denied++
		}
	}
	if denied > 0 {
		// One stable message, logged once: not one per namespace.
		return out, errors.New("not allowed to enter other network namespaces (needs CAP_SYS_ADMIN): their listeners have no queue gauges")
	}
	return out, nil
}

func (s *KernelSource) KernelCounters() (netstat.Snapshot, error) { return netstat.ReadNetns(s.self) }
