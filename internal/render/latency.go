package render

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/synq-trace/synq/internal/aggregate"
	"github.com/synq-trace/synq/tracer"
)

// latGroupTitle names a group: its endpoint (or port and addresses),
// namespace and owner.
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
	b.WriteString("  netns " + netnsCell(uint64(g.Netns), g.NetnsName))
	if len(g.Owners) > 0 {
		own, cg := ownerLabel(g.Owners)
		b.WriteString("  owner " + own)
		if g.Owners[0].Accepting {
			b.WriteString(" (* seen accepting)")
		}
		if cg != "" {
			b.WriteString("  workload " + cg)
		}
	}
	return b.String()
}

// WriteLatencyText prints each group's accept latency and accept-queue depth
// as log2 histograms.
func WriteLatencyText(w io.Writer, groups []*aggregate.Group, by aggregate.GroupBy) error {
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
				Duration(time.Duration(h.Quantile(0.5))), Duration(time.Duration(h.Quantile(0.9))),
				Duration(time.Duration(h.Quantile(0.99))), Duration(time.Duration(h.Max())))
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

// LatencyGroupJSON is one group of `synq latency --output json`.
type LatencyGroupJSON struct {
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

// latBucketJSON is one log2 slot of latency, inclusive, in nanoseconds
// like every duration in synq's JSON: the text histogram's whole-µs slot
// [from, to] is [from·1000, to·1000+999] ns.
type latBucketJSON struct {
	FromNs uint64 `json:"from_ns"`
	ToNs   uint64 `json:"to_ns"`
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

// NewLatencyJSON converts a group.
func NewLatencyJSON(g *aggregate.Group, by aggregate.GroupBy) LatencyGroupJSON {
	j := LatencyGroupJSON{
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
		j.Buckets = append(j.Buckets, latBucketJSON{FromNs: b.From * 1000, ToNs: b.To*1000 + 999, Count: b.Count})
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
