package render

import "github.com/synq-trace/synq/internal/aggregate"

// JSON: one object per refresh. Counts are exact kernel deltas over the
// interval; null where the tier cannot know the value.
type TopFrameJSON struct {
	TimeNs               int64   `json:"time_ns"`
	IntervalNs           int64   `json:"interval_ns"`
	Tier                 string  `json:"tier"`
	Kernel               string  `json:"kernel"`
	RingRecords          uint64  `json:"ring_records"`
	RingRecordsPerSec    float64 `json:"ring_records_per_sec"`
	Lost                 uint64  `json:"lost"`
	RecursionMisses      uint64  `json:"recursion_misses"`
	UnattributedEnqueues uint64  `json:"unattributed_enqueues"`
	// Reconcile: kernel counter vs synq since the start, per claimed
	// counter and per other counter the kernel moved (synq null where the
	// hooks cannot attribute it); absent when not reconciled.
	Reconcile []TopCoverageJSON `json:"reconcile,omitempty"`
	Sort      string            `json:"sort"`
	Rows      []TopRowJSON      `json:"rows"`
}

type TopRowJSON struct {
	Netns         uint32            `json:"netns"`
	NetnsName     string            `json:"netns_name,omitempty"`
	Addr          string            `json:"addr"`
	Port          uint16            `json:"port"`
	Inode         uint64            `json:"inode"`
	Member        int               `json:"member,omitempty"` // number in its SO_REUSEPORT group
	Owners        []aggregate.Owner `json:"owners"`
	Syn           *uint64           `json:"syn"`
	SynPerSec     *float64          `json:"syn_per_sec"`
	Enqueued      uint64            `json:"enqueued"`
	Accepts       uint64            `json:"accepts"`
	AcceptsPerSec float64           `json:"accepts_per_sec"`
	Cookies       *uint64           `json:"cookies"`
	CookiesPerSec *float64          `json:"cookies_per_sec"`
	Drops         uint64            `json:"drops"`
	DropsPerSec   float64           `json:"drops_per_sec"`
	DropsExact    bool              `json:"drops_exact"`
	DropsByReason topDropsJSON      `json:"drops_by_reason"`
	AcceptQueue   topQueueJSON      `json:"accept_queue"`
	SynQueue      topQueueJSON      `json:"syn_queue"`
	AcceptLatency topLatencyJSON    `json:"accept_latency"`
}

type topDropsJSON struct {
	SynQueueFull    *uint64 `json:"syn_queue_full"`
	AcceptQueueFull *uint64 `json:"accept_queue_full"`
	SynOther        *uint64 `json:"syn_other"`
	SynDerived      *uint64 `json:"syn_derived"`
	SynSettledBy    string  `json:"syn_settled_by,omitempty"`
	AckOverflow     uint64  `json:"ack_overflow"`
	Other           uint64  `json:"other"`
}

type topQueueJSON struct {
	Now  uint32 `json:"now"`
	Peak uint32 `json:"peak"`
	Max  uint32 `json:"max"`
}

type topLatencyJSON struct {
	Count uint64 `json:"count"`
	P50Ns *int64 `json:"p50_ns"`
	P99Ns *int64 `json:"p99_ns"`
	MaxNs *int64 `json:"max_ns"`
}

func NewTopFrameJSON(f *aggregate.Frame, key aggregate.SortKey) TopFrameJSON {
	j := TopFrameJSON{
		TimeNs: f.Time.UnixNano(), IntervalNs: f.Interval.Nanoseconds(), Tier: string(f.Tier), Kernel: f.Kernel,
		RingRecords: f.RingRecords, RingRecordsPerSec: f.Rate(f.RingRecords), Lost: f.Lost, RecursionMisses: f.RecursionMisses,
		UnattributedEnqueues: f.UnattributedEnqueues,
		Sort:                 string(key), Rows: make([]TopRowJSON, 0, len(f.Rows)),
	}
	for _, c := range f.Coverage {
		cj := TopCoverageJSON{Counter: c.Counter, Kernel: c.Kernel, Synq: c.Synq, Claimed: c.Claimed, Note: c.Note}
		if c.Kernel > 0 && c.Synq != nil {
			r := float64(*c.Synq) / float64(c.Kernel)
			cj.Ratio = &r
		}
		j.Reconcile = append(j.Reconcile, cj)
	}
	perSec := func(v *uint64) *float64 {
		if v == nil {
			return nil
		}
		r := f.Rate(*v)
		return &r
	}
	for _, r := range f.Rows {
		row := TopRowJSON{
			Netns: r.Netns, NetnsName: r.NetnsName, Addr: r.Addr.String(), Port: r.Port, Inode: r.Inode, Member: r.Member,
			Owners: r.Owners, Syn: r.Syn, SynPerSec: perSec(r.Syn), Enqueued: r.Enqueued,
			Accepts: r.Accepts, AcceptsPerSec: f.Rate(r.Accepts), Cookies: r.Cookies, CookiesPerSec: perSec(r.Cookies),
			Drops: r.Drops, DropsPerSec: f.Rate(r.Drops), DropsExact: r.DropsExact,
			DropsByReason: topDropsJSON{SynQueueFull: r.SynQueueFull, AcceptQueueFull: r.AcceptQueueFull,
				SynOther: r.SynOther, SynDerived: r.SynDerived, SynSettledBy: r.SettledBy, AckOverflow: r.AckOverflow, Other: r.Other},
			AcceptQueue:   topQueueJSON(r.AcceptQueue),
			SynQueue:      topQueueJSON(r.SynQueue),
			AcceptLatency: topLatencyJSON{Count: r.Latency.Count},
		}
		if row.Owners == nil {
			row.Owners = []aggregate.Owner{}
		}
		if r.Latency.Count > 0 {
			p50, p99, mx := r.Latency.P50.Nanoseconds(), r.Latency.P99.Nanoseconds(), r.Latency.Max.Nanoseconds()
			row.AcceptLatency.P50Ns, row.AcceptLatency.P99Ns, row.AcceptLatency.MaxNs = &p50, &p99, &mx
		}
		j.Rows = append(j.Rows, row)
	}
	return j
}

type TopCoverageJSON struct {
	Counter string   `json:"counter"`
	Kernel  uint64   `json:"kernel"`
	Synq    *uint64  `json:"synq"`           // null: the hooks cannot attribute it on this kernel
	Ratio   *float64 `json:"coverage_ratio"` // synq/kernel; null when the kernel counted none or synq is null
	Claimed bool     `json:"claimed"`        // synq counts every increment
	Note    string   `json:"note,omitempty"` // why not claimed
}
