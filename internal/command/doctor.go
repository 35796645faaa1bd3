package command

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/synq-trace/synq/internal/aggregate"
	"github.com/synq-trace/synq/internal/doctor"
	"github.com/synq-trace/synq/internal/ledger"
	"github.com/synq-trace/synq/internal/netns"
	"github.com/synq-trace/synq/internal/render"
	"github.com/synq-trace/synq/internal/sockstate"
	"github.com/synq-trace/synq/tracer"
)

// DoctorOptions are doctor's flags, checked.
type DoctorOptions struct {
	Format   render.Format
	Duration time.Duration // --duration: the window observed
	Tracer   tracer.Config // from tracerConfig
	Only     *netns.NS     // --netns, nil for every namespace
	Workload               // --runtime-endpoint and the workload filters
}

// ErrFound is what Doctor returns when it found something (a finding worse
// than a healthy listener): cmd/synq exits 3 for it, silently.
var ErrFound = errors.New("doctor: findings")

// Doctor observes every listener (or the selected ones) for the duration
// with top's counters, then prints the findings, worst first. Ctrl-C ends
// the window early: what was seen until then is diagnosed.
func Doctor(ctx context.Context, env Env, o DoctorOptions) error {
	w, err := watch(env, o.Tracer, o.Only, o.Workload)
	if err != nil {
		return err
	}
	defer w.Close()
	top, rec, readErr, initial := w.top, w.rec, w.readErr, w.initial
	t := time.NewTimer(o.Duration)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case err := <-readErr:
		readErr <- err
		if err != nil {
			return err
		}
	}
	owners := aggregate.OwnerCache{MaxAge: time.Second, Resolver: w.resolver}
	s, err := w.sample(&owners)
	if err != nil {
		return err
	}
	time.Sleep(ringDrainWait)
	f := top.Refresh(s)
	if !o.Filter.Empty() {
		f.Rows = slices.DeleteFunc(f.Rows, func(r aggregate.Row) bool { return !o.selects(r.Owners) })
	}
	f.Coverage = rec.coverage(s)
	in := doctor.Input{Frame: &f, Netns: doctorNetns(env, initial, s.View), Procs: doctorProcs(f.Rows),
		States: sockstate.DefaultThresholds}
	if !o.Filter.Empty() { // only the namespaces of the selected listeners
		maps.DeleteFunc(in.Netns, func(ino uint32, _ *doctor.Netns) bool {
			return !slices.ContainsFunc(f.Rows, func(r aggregate.Row) bool { return r.Netns == ino })
		})
	}
	fs := doctor.Diagnose(in)
	if err := render.WriteDoctor(env.Stdout, o.Format, &render.DoctorReport{Frame: &f, Findings: fs, Netns: in.Netns}); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	if doctor.Found(fs) {
		return ErrFound
	}
	return nil
}

// doctorNetns reads, for each namespace of the final walk, its counters'
// deltas over the window, its sysctls and its socket states.
func doctorNetns(env Env, before, after *ledger.View) map[uint32]*doctor.Netns {
	start := map[uint64]map[string]int64{}
	for _, n := range before.Netns {
		if n.Err == nil && n.MIB != nil {
			start[n.NS.Inode] = n.MIB
		}
	}
	out := map[uint32]*doctor.Netns{}
	for _, n := range after.Netns {
		if n.Err != nil {
			continue
		}
		d := &doctor.Netns{Inode: uint32(n.NS.Inode), Name: n.NS.Name}
		if b := start[n.NS.Inode]; b != nil && n.MIB != nil {
			d.Delta = map[string]int64{}
			for k, v := range n.MIB {
				if o, ok := b[k]; ok {
					d.Delta[k] = v - o
				}
			}
		}
		if n.NS.Do != nil {
			if err := n.NS.Do(func() error { d.Sysctls = readSysctls(); return nil }); err != nil {
				fmt.Fprintf(env.Stderr, "synq: sysctls of netns %s: %v\n", n.NS, err)
			}
			if c, err := sockstate.CountIn(n.NS.Do, n.NS); err == nil {
				d.States = c
			} else {
				fmt.Fprintf(env.Stderr, "synq: socket states of netns %s: %v\n", n.NS, err)
			}
		}
		out[d.Inode] = d
	}
	return out
}

// readSysctls reads the listen path's sysctls of the calling thread's
// network namespace (/proc/sys/net is the reader's namespace's).
func readSysctls() doctor.Sysctls {
	get := func(path string) *int64 {
		b, err := os.ReadFile("/proc/sys/net/" + path)
		if err != nil {
			return nil
		}
		v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return nil
		}
		return &v
	}
	return doctor.Sysctls{Somaxconn: get("core/somaxconn"), MaxSynBacklog: get("ipv4/tcp_max_syn_backlog"),
		Syncookies: get("ipv4/tcp_syncookies"), MaxTwBuckets: get("ipv4/tcp_max_tw_buckets")}
}

// doctorProcs reads /proc of every process holding a listener.
func doctorProcs(rows []aggregate.Row) map[int]*doctor.Proc {
	out := map[int]*doctor.Proc{}
	for _, r := range rows {
		for _, o := range r.Owners {
			if _, ok := out[o.PID]; !ok {
				if p := doctor.ReadProc("/proc", o.PID); p != nil {
					out[o.PID] = p
				}
			}
		}
	}
	return out
}
