package tracer

import (
	"fmt"
	"time"
)

// In-kernel distributions per listener: log-linear buckets (HistPrecision
// sub-bucket bits, the layout of internal/hist), exact whatever the event
// stream loses or samples.
const (
	HistPrecision  = 2   // 4 buckets per power of two: within 12.5%
	LatencyBuckets = 156 // accept latency in ns up to 2^40 (the last bucket holds more)
	DepthBuckets   = 60  // accept queue length at enqueue up to 2^16
)

// Histogram is a listener's accept latency and enqueue depth distributions
// since the tracer attached (or since the kernel's LRU map evicted and
// restarted the listener's entry; Sub tells).
type Histogram struct {
	// Latency counts accepts by time since the child entered the accept
	// queue, in ns buckets.
	Latency [LatencyBuckets]uint64
	// Depth counts enqueues by the accept queue's length with the new
	// child in it.
	Depth [DepthBuckets]uint64
	// NoLatency counts accepts of children whose enqueue synq did not see
	// (queued before it attached).
	NoLatency uint64
	// LatencySum is the sum of the latencies counted in Latency, exact.
	LatencySum time.Duration
}

// Histograms reads every listener's in-kernel histograms, keyed like Counts.
func (t *Tracer) Histograms() (map[ListenerID]*Histogram, error) {
	out := map[ListenerID]*Histogram{}
	var key uint64
	var v tpSynqHist
	it := t.maps["listener_hist"].Iterate()
	for it.Next(&key, &v) {
		out[ListenerID(key)] = &Histogram{Latency: v.Latency, Depth: v.Depth, NoLatency: v.NoLatency,
			LatencySum: time.Duration(v.LatencySumNs)}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read listener histograms: %w", err)
	}
	return out, nil
}

// Accepts is the number of accepts counted, with and without latency.
func (h *Histogram) Accepts() uint64 {
	n := h.NoLatency
	for _, c := range h.Latency {
		n += c
	}
	return n
}

// Sub returns h − prev. The kernel only adds; if any count shrank, the
// listener's entry was evicted and started again (or the address now belongs
// to another listener), and h is all there is since. prev may be nil.
func (h *Histogram) Sub(prev *Histogram) *Histogram {
	d := *h
	if prev == nil {
		return &d
	}
	if h.NoLatency < prev.NoLatency || h.LatencySum < prev.LatencySum {
		return &d
	}
	for i := range h.Latency {
		if h.Latency[i] < prev.Latency[i] {
			return &d
		}
	}
	for i := range h.Depth {
		if h.Depth[i] < prev.Depth[i] {
			return &d
		}
	}
	d.NoLatency -= prev.NoLatency
	d.LatencySum -= prev.LatencySum
	for i := range d.Latency {
		d.Latency[i] -= prev.Latency[i]
	}
	for i := range d.Depth {
		d.Depth[i] -= prev.Depth[i]
	}
	return &d
}
