// Package hist records distributions of non-negative integers (accept
// latencies in nanoseconds, queue depths) and answers percentiles with a
// bounded relative error, in the spirit of HdrHistogram: log-linear buckets,
// exact below 2^(p+1), then 2^p buckets per power of two.
//
// A value v ≥ 2^(p+1) falls in a bucket of width 2^(⌊log2 v⌋-p); reporting the
// bucket's midpoint is off by at most half that width, i.e. by at most
// v·2^-(p+1). Min and max are kept exactly, and quantiles are clamped to them.
package hist

import (
	"fmt"
	"math"
	"math/bits"
)

// DefaultPrecision is p for New: 128 buckets per power of two, quantiles
// within 1/256 (0.39%) of the exact value.
const DefaultPrecision = 7

// Hist is a log-linear histogram. The zero value is not usable: call New.
// It is not safe for concurrent use.
type Hist struct {
	p        uint     // sub-bucket bits
	counts   []uint64 // grown on demand up to the highest bucket recorded
	n        uint64
	min, max uint64
	sum      float64
}

// New returns a histogram with DefaultPrecision.
func New() *Hist { return NewPrecision(DefaultPrecision) }

// NewPrecision returns a histogram with 2^p buckets per power of two
// (1 ≤ p ≤ 16): quantiles are within a relative 2^-(p+1) of the exact value.
func NewPrecision(p int) *Hist {
	if p < 1 || p > 16 {
		panic(fmt.Sprintf("hist: precision %d out of range 1-16", p))
	}
	return &Hist{p: uint(p)}
}

// RelativeError is the bound on |Quantile(q) − exact| / exact.
func (h *Hist) RelativeError() float64 { return math.Ldexp(1, -int(h.p)-1) }

// index is the bucket of v.
func (h *Hist) index(v uint64) int {
	if v < 1<<(h.p+1) {
		return int(v)
	}
	e := uint(bits.Len64(v)) - 1 // v in [2^e, 2^(e+1)), e > p
	return int((uint64(e-h.p+1) << h.p) + (v >> (e - h.p)) - (1 << h.p))
}

// bounds is the lowest value of bucket i and its width.
func (h *Hist) bounds(i int) (lo, width uint64) {
	seg := uint(i) >> h.p
	if seg <= 1 {
		return uint64(i), 1
	}
	shift := seg - 1 // = e - p
	off := uint64(i) & (1<<h.p - 1)
	return (1<<h.p + off) << shift, 1 << shift
}

// Record adds one value.
func (h *Hist) Record(v uint64) { h.RecordN(v, 1) }

// RecordN adds n occurrences of v.
func (h *Hist) RecordN(v, n uint64) {
	if n == 0 {
		return
	}
	i := h.index(v)
	if i >= len(h.counts) {
		h.grow(i + 1)
	}
	h.counts[i] += n
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n += n
	h.sum += float64(v) * float64(n)
}

func (h *Hist) grow(n int) {
	if n <= cap(h.counts) {
		h.counts = h.counts[:n]
		return
	}
	c := make([]uint64, n, max(n, 2*cap(h.counts)))
	copy(c, h.counts)
	h.counts = c
}

// Count is the number of values recorded.
func (h *Hist) Count() uint64 { return h.n }

// Min is the smallest value recorded, exactly (0 when empty).
func (h *Hist) Min() uint64 { return h.min }

// Max is the largest value recorded, exactly (0 when empty).
func (h *Hist) Max() uint64 { return h.max }

// Mean is the exact mean (up to float64 rounding), 0 when empty.
func (h *Hist) Mean() float64 {
	if h.n == 0 {
		return 0
	}
	return h.sum / float64(h.n)
}

// Quantile returns the q-quantile (0 ≤ q ≤ 1) by the nearest-rank method:
// the value of rank ⌈q·n⌉ (at least 1) in sorted order, within RelativeError.
// Quantile(0) and Quantile(1) are the exact min and max. It returns 0 when
// the histogram is empty.
func (h *Hist) Quantile(q float64) uint64 {
	if h.n == 0 {
		return 0
	}
	rank := Rank(q, h.n)
	if rank == 1 {
		return h.min
	}
	if rank == h.n {
		return h.max
	}
	var cum uint64
	for i, c := range h.counts {
		cum += c
		if cum >= rank {
			lo, w := h.bounds(i)
			v := lo + w/2
			return min(max(v, h.min), h.max)
		}
	}
	return h.max
}

// Rank is the 1-based nearest rank of quantile q among n values: ⌈q·n⌉,
// at least 1. Rounding noise of q·n (0.29·100 = 28.999…) is forgiven.
func Rank(q float64, n uint64) uint64 {
	switch {
	case q <= 0 || n == 0:
		return 1
	case q >= 1:
		return n
	}
	r := uint64(math.Ceil(q*float64(n) - 1e-9))
	return min(max(r, 1), n)
}

// SetMax sets the largest value recorded to v, which the caller knows
// exactly where the buckets do not (synq's kernel keeps exact maxima beside
// its histograms); quantiles are clamped to it, and a single value is v.
// It does nothing to an empty histogram.
func (h *Hist) SetMax(v uint64) {
	if h.n == 0 {
		return
	}
	h.max = v
	if h.n == 1 {
		h.min, h.sum = v, float64(v)
	}
	h.min = min(h.min, v)
}

// Merge adds every value of o, which must have the same precision.
func (h *Hist) Merge(o *Hist) {
	if o.p != h.p {
		panic(fmt.Sprintf("hist: merging precision %d into %d", o.p, h.p))
	}
	if o.n == 0 {
		return
	}
	if len(o.counts) > len(h.counts) {
		h.grow(len(o.counts))
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
}

// Reset empties the histogram, keeping its memory.
func (h *Hist) Reset() {
	clear(h.counts)
	h.counts = h.counts[:0]
	h.n, h.min, h.max, h.sum = 0, 0, 0, 0
}

// Log2 returns the distribution in power-of-two slots, exactly: every bucket
// lies within one slot.
func (h *Hist) Log2() *Log2 {
	var l Log2
	for i, c := range h.counts {
		if c > 0 {
			lo, _ := h.bounds(i)
			l.RecordN(lo, c)
		}
	}
	return &l
}

// FromBuckets builds a histogram at precision p from bucket counts in this
// package's layout, as synq's BPF programs keep them in the kernel. Values
// inside a bucket are unknown: min and max are the bounds of the lowest and
// highest non-empty buckets and the mean is taken at bucket midpoints, so
// every statistic is within RelativeError of the exact one.
func FromBuckets(p int, counts []uint64) *Hist {
	h := NewPrecision(p)
	for i, c := range counts {
		if c == 0 {
			continue
		}
		lo, w := h.bounds(i)
		if i >= len(h.counts) {
			h.grow(i + 1)
		}
		h.counts[i] += c
		if h.n == 0 {
			h.min = lo
		}
		h.max = lo + w - 1
		h.n += c
		h.sum += (float64(lo) + float64(w-1)/2) * float64(c)
	}
	return h
}

// BucketLow is the lowest value of bucket i at precision p.
func BucketLow(p, i int) uint64 { lo, _ := NewPrecision(p).bounds(i); return lo }

// Index is the bucket of v at precision p.
func Index(p int, v uint64) int { return NewPrecision(p).index(v) }
