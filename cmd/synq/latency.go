package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/synq-trace/synq/internal/aggregate"
	"github.com/synq-trace/synq/internal/netns"
	"github.com/synq-trace/synq/internal/render"
	"github.com/synq-trace/synq/tracer"
	"github.com/urfave/cli/v2"
)

func latencyCommand() *cli.Command {
	return &cli.Command{
		Name:  "latency",
		Usage: "accept latency per listener or port as log2 histograms with p50/p90/p99/max, and the accept-queue depth at enqueue",
		Flags: []cli.Flag{
			flagOutput, flagNetns, flagPort, flagBTF, flagSample,
			&cli.StringFlag{Name: "by", Value: string(aggregate.ByListener), Usage: "listener (each socket, SO_REUSEPORT members apart) or port"},
			&cli.DurationFlag{Name: "duration", Usage: "stop after this long (default: until Ctrl-C)"},
			flagTier,
		},
		Action: runLatency,
	}
}

func runLatency(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("latency takes no arguments, got %q", c.Args().First())
	}
	format, err := outputFormat(c)
	if err != nil {
		return err
	}
	by, err := aggregate.ParseGroupBy(c.String("by"))
	if err != nil {
		return usageErr(err)
	}
	d := c.Duration("duration")
	if d < 0 {
		return usagef("invalid --duration %v: must be positive", d)
	}
	cfg, only, err := tracerConfig(c, []tracer.Kind{tracer.KindAccept, tracer.KindEnqueue})
	if err != nil {
		return err
	}
	tr, err := openTracer(c, cfg)
	if err != nil {
		return err
	}
	defer tr.Close()
	until := "Ctrl-C"
	if d > 0 {
		until = d.String()
	}
	fmt.Fprintf(c.App.ErrWriter, "synq: tracing accept latency by %s until %s\n", by, until)

	agg := aggregate.NewLatency(by)
	var end time.Time // set once the run is over; read only by the reader goroutine after
	endSet := make(chan struct{})
	readCtx, stopRead := context.WithCancel(context.Background())
	defer stopRead()
	readErr := make(chan error, 1)
	var n struct{ accepts, enqueues uint64 }
	go func() {
		readErr <- tr.Read(readCtx, func(ev *tracer.Event) {
			select {
			case <-endSet:
				// Events still in the ring buffer at the end: keep what
				// happened before it.
				if ev.Time.After(end) {
					return
				}
			default:
			}
			switch ev.Kind {
			case tracer.KindAccept:
				n.accepts++
			case tracer.KindEnqueue:
				n.enqueues++
			}
			agg.Observe(ev)
		})
	}()

	var timeout <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-c.Context.Done():
	case <-timeout:
	case err := <-readErr:
		if err != nil {
			return err
		}
		return nil
	}
	end = time.Now()
	// The kernel's histograms hold every accept and enqueue of the run,
	// whatever the stream sampled or lost (the maps started empty).
	hists, err := tr.Histograms()
	if err != nil {
		return err
	}
	maxima, err := tr.Maxima() // the first call: since the tracer attached
	if err != nil {
		return err
	}
	close(endSet)
	// The reader polls the ring buffer every 100 ms: let it catch up.
	time.Sleep(ringDrainWait)
	stopRead()
	if err := <-readErr; err != nil {
		return err
	}

	ls, err := snapshotAll(c, only)
	if err != nil {
		fmt.Fprintf(c.App.ErrWriter, "synq: no listener snapshot (no owners; listeners without streamed events left out): %v\n", err)
	}
	agg.UseKernel(hists, maxima, ls)
	groups := agg.Groups(latOwners(ls), latNetnsNames())
	out := bufio.NewWriter(c.App.Writer)
	if format == render.JSON {
		enc := json.NewEncoder(out)
		for _, g := range groups {
			if err := enc.Encode(newLatencyJSON(g, by)); err != nil {
				return err
			}
		}
	} else if err := writeLatencyText(out, groups, by); err != nil {
		return err
	}
	if err := out.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	st, err := tr.Stats()
	if err != nil {
		return err
	}
	lost := st.Lost + st.RecursionMisses + st.BadRecords
	var accepts, enqueues uint64
	for _, g := range groups {
		accepts += g.Latency.Count() + g.UnknownLatency
		enqueues += g.Depth.Count()
	}
	fmt.Fprintf(c.App.ErrWriter, "synq: %d accepts, %d enqueues in %d groups (%d and %d events streamed), lost %d\n",
		accepts, enqueues, len(groups), n.accepts, n.enqueues, lost)
	return nil
}

// latOwners finds the processes holding the listeners seen, from one
// snapshot at the end (listeners closed by then have no owner).
func latOwners(ls []tracer.Listener) map[tracer.ListenerID][]aggregate.Owner {
	inodes := map[uint64]bool{}
	for _, l := range ls {
		inodes[l.Inode] = true
	}
	byInode := aggregate.Owners("/proc", inodes)
	out := map[tracer.ListenerID][]aggregate.Owner{}
	for _, l := range ls {
		out[l.ID] = byInode[l.Inode]
	}
	return out
}

// latNetnsNames names namespaces from one read of /run/netns (keyed as
// tracer events key them).
func latNetnsNames() map[uint32]string {
	all := netns.Names()
	names := make(map[uint32]string, len(all))
	for ino, n := range all {
		names[uint32(ino)] = n
	}
	return names
}

func latGroupTitle(g *aggregate.Group, by aggregate.GroupBy) string {
	var b strings.Builder
	if by == aggregate.ByListener && len(g.Addrs) > 0 {
		b.WriteString(aggregate.MemberLabel(tracer.Endpoint{Addr: g.Addrs[0], Port: g.Port}, g.Member))
	} else {
		addrs := make([]string, len(g.Addrs))
		for i, a := range g.Addrs {
			addrs[i] = a.String()
		}
		fmt.Fprintf(&b, "port %d (%s; %d listeners)", g.Port, strings.Join(addrs, ", "), len(g.Listeners))
	}
	fmt.Fprintf(&b, "  netns %d", g.Netns)
	if g.NetnsName != "" {
		fmt.Fprintf(&b, " (%s)", g.NetnsName)
	}
	if len(g.Owners) > 0 {
		own, cg := ownerLabel(g.Owners)
		b.WriteString("  owner " + own)
		if g.Owners[0].Accepting {
			b.WriteString(" (* seen accepting)")
		}
		if cg != "" {
			b.WriteString(" " + cg)
		}
	}
	return b.String()
}

func writeLatencyText(w io.Writer, groups []*aggregate.Group, by aggregate.GroupBy) error {
	if len(groups) == 0 {
		_, err := fmt.Fprintln(w, "no accepts or enqueues seen")
		return err
	}
	for i, g := range groups {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintln(w, latGroupTitle(g, by))
		h := g.Latency
		switch {
		case h.Count() == 0:
			fmt.Fprint(w, "accept latency: no accepts")
		default:
			fmt.Fprintf(w, "accept latency: %d accepts  p50 %s  p90 %s  p99 %s  max %s", h.Count(),
				render.Duration(time.Duration(h.Quantile(0.5))), render.Duration(time.Duration(h.Quantile(0.9))),
				render.Duration(time.Duration(h.Quantile(0.99))), render.Duration(time.Duration(h.Max())))
		}
		if g.UnknownLatency > 0 {
			fmt.Fprintf(w, " (+%d enqueued before synq started)", g.UnknownLatency)
		}
		fmt.Fprintln(w)
		if err := g.LatencyLog.Write(w, "usecs"); err != nil {
			return err
		}
		q := g.Depth
		if q.Count() == 0 {
			continue
		}
		fmt.Fprintf(w, "\naccept queue depth at enqueue (backlog %d): %d enqueues  p50 %d  p90 %d  p99 %d  max %d\n",
			g.Backlog, q.Count(), q.Quantile(0.5), q.Quantile(0.9), q.Quantile(0.99), q.Max())
		if err := q.Log2().Write(w, "depth"); err != nil {
			return err
		}
	}
	return nil
}

type latencyGroupJSON struct {
	Netns                 uint32            `json:"netns"`
	NetnsName             string            `json:"netns_name,omitempty"`
	Addr                  string            `json:"addr,omitempty"`
	Addrs                 []string          `json:"addrs,omitempty"`
	Port                  uint16            `json:"port"`
	Listeners             int               `json:"listeners"`
	Inode                 uint64            `json:"inode,omitempty"`  // --by listener
	Inodes                []uint64          `json:"inodes,omitempty"` // --by port
	Member                int               `json:"member,omitempty"` // number in its SO_REUSEPORT group
	Owners                []aggregate.Owner `json:"owners"`
	Accepts               uint64            `json:"accepts"`
	AcceptsUnknownLatency uint64            `json:"accepts_unknown_latency"`
	P50Ns                 *int64            `json:"p50_ns"`
	P90Ns                 *int64            `json:"p90_ns"`
	P99Ns                 *int64            `json:"p99_ns"`
	MaxNs                 *int64            `json:"max_ns"`
	Buckets               []latBucketJSON   `json:"buckets"`
	AcceptQueueDepth      latDepthJSON      `json:"accept_queue_depth"`
}

// latBucketJSON is one log2 slot of latency in whole microseconds,
// inclusive: as the text histogram prints it.
type latBucketJSON struct {
	FromUs uint64 `json:"from_us"`
	ToUs   uint64 `json:"to_us"`
	Count  uint64 `json:"count"`
}

type latDepthJSON struct {
	Enqueues uint64               `json:"enqueues"`
	Backlog  uint32               `json:"backlog"`
	P50      *uint64              `json:"p50"`
	P90      *uint64              `json:"p90"`
	P99      *uint64              `json:"p99"`
	Max      *uint64              `json:"max"`
	Buckets  []latDepthBucketJSON `json:"buckets"`
}

type latDepthBucketJSON struct {
	From  uint64 `json:"from"`
	To    uint64 `json:"to"`
	Count uint64 `json:"count"`
}

func newLatencyJSON(g *aggregate.Group, by aggregate.GroupBy) latencyGroupJSON {
	j := latencyGroupJSON{
		Netns: g.Netns, NetnsName: g.NetnsName, Port: g.Port, Listeners: len(g.Listeners), Owners: g.Owners,
		Accepts: g.Latency.Count(), AcceptsUnknownLatency: g.UnknownLatency, Buckets: []latBucketJSON{},
		AcceptQueueDepth: latDepthJSON{Enqueues: g.Depth.Count(), Backlog: g.Backlog, Buckets: []latDepthBucketJSON{}},
	}
	if j.Owners == nil {
		j.Owners = []aggregate.Owner{}
	}
	if by == aggregate.ByListener && len(g.Inodes) == 1 {
		j.Inode, j.Member = g.Inodes[0], g.Member
	} else {
		j.Inodes = g.Inodes
	}
	for _, a := range g.Addrs {
		j.Addrs = append(j.Addrs, a.String())
	}
	if by == aggregate.ByListener && len(j.Addrs) == 1 {
		j.Addr, j.Addrs = j.Addrs[0], nil
	}
	if h := g.Latency; h.Count() > 0 {
		ns := func(v uint64) *int64 { x := int64(v); return &x }
		j.P50Ns, j.P90Ns, j.P99Ns, j.MaxNs = ns(h.Quantile(0.5)), ns(h.Quantile(0.9)), ns(h.Quantile(0.99)), ns(h.Max())
	}
	for _, b := range g.LatencyLog.Buckets() {
		j.Buckets = append(j.Buckets, latBucketJSON{FromUs: b.From, ToUs: b.To, Count: b.Count})
	}
	if q := g.Depth; q.Count() > 0 {
		v := func(x uint64) *uint64 { return &x }
		d := &j.AcceptQueueDepth
		d.P50, d.P90, d.P99, d.Max = v(q.Quantile(0.5)), v(q.Quantile(0.9)), v(q.Quantile(0.99)), v(q.Max())
		for _, b := range q.Log2().Buckets() {
			d.Buckets = append(d.Buckets, latDepthBucketJSON{From: b.From, To: b.To, Count: b.Count})
		}
	}
	return j
}
