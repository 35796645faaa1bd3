package command

import (
	"fmt"

	"github.com/synq-trace/synq/internal/netns"
	"github.com/synq-trace/synq/tracer"
)

// topSource snapshots listeners in every netns (or one) with one
// iter/tcp program loaded for the whole run.
type topSource struct {
	snap *tracer.Snapshotter
	only *netns.NS
	port uint16
	// lastN is how many listeners the last list found: the next one
	// allocates once (10k listeners: ~1 MB, not ~2 MB of doublings).
	lastN int
}

func (s *topSource) list() ([]tracer.Listener, map[uint32]string, error) {
	var all []netns.NS
	if s.only != nil {
		all = []netns.NS{*s.only}
	} else {
		var err error
		if all, err = netns.All(); err != nil {
			return nil, nil, err
		}
	}
	out := make([]tracer.Listener, 0, s.lastN)
	names := map[uint32]string{}
	for _, ns := range all {
		err := ns.Do(func() error {
			ls, err := s.snap.Listeners()
			for _, l := range ls {
				if s.port == 0 || l.Port == s.port {
					out = append(out, l)
				}
			}
			return err
		})
		if err != nil {
			// A namespace may vanish between listing and entering it.
			if s.only != nil {
				return nil, nil, fmt.Errorf("netns %s: %w", ns, err)
			}
			continue
		}
		if ns.Name != "" {
			names[uint32(ns.Inode)] = ns.Name
		}
	}
	s.lastN = len(out)
	return out, names, nil
}

// snapshotAll lists listeners in the given namespaces (all when nil).
func snapshotAll(btfPath string, only *netns.NS) ([]tracer.Listener, error) {
	snap, err := tracer.NewSnapshotter(btfPath)
	if err != nil {
		return nil, kernelErr(err)
	}
	defer snap.Close()
	var all []netns.NS
	if only != nil {
		all = []netns.NS{*only}
	} else if all, err = netns.All(); err != nil {
		return nil, err
	}
	var out []tracer.Listener
	for _, ns := range all {
		err := ns.Do(func() error {
			ls, err := snap.Listeners()
			out = append(out, ls...)
			return err
		})
		if err != nil {
			// A namespace may vanish between listing and entering it.
			if only != nil {
				return nil, fmt.Errorf("netns %s: %w", ns, err)
			}
			continue
		}
	}
	return out, nil
}
