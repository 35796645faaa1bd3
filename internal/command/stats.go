package command

import (
	"context"
	"time"

	"github.com/synq-trace/synq/internal/netns"
	"github.com/synq-trace/synq/internal/netstat"
	"github.com/synq-trace/synq/internal/render"
)

// StatsOptions are stats' flags, checked.
type StatsOptions struct {
	Format   render.Format
	NS       netns.NS      // --netns, or synq's own
	Interval time.Duration // --interval: rates every interval; 0 for one snapshot
	Count    int           // --count: reports with Interval, 0 until ctx ends
	// Names picks the counters to show from the first snapshot.
	Names func(netstat.Snapshot) ([]string, error)
}

// Stats prints the kernel's counters once, or their rates every Interval.
func Stats(ctx context.Context, env Env, o StatsOptions) error {
	ns, format, interval, count := o.NS, o.Format, o.Interval, o.Count
	prev, err := netstat.ReadNetns(ns)
	if err != nil {
		return err
	}
	prevAt := time.Now()
	names, err := o.Names(prev)
	if err != nil {
		return err
	}
	out := env.Stdout
	if interval == 0 {
		return render.WriteStats(out, format, render.NewStatsReport(ns, prevAt, 0, names, prev, nil))
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for n := 0; count == 0 || n < count; n++ {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		cur, err := netstat.ReadNetns(ns)
		if err != nil {
			return err
		}
		now := time.Now()
		r := render.NewStatsReport(ns, now, now.Sub(prevAt), names, cur, prev)
		if err := render.WriteStats(out, format, r); err != nil {
			return err
		}
		prev, prevAt = cur, now
	}
	return nil
}
