package hist

import (
	"bytes"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// exactQuantile is the nearest-rank quantile of sorted values.
func exactQuantile(sorted []uint64, q float64) uint64 {
	return sorted[Rank(q, uint64(len(sorted)))-1]
}

var quantiles = []float64{0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1}

// checkQuantiles asserts every quantile of h against the exact one of vals,
// within h's relative error bound.
func checkQuantiles(t *testing.T, h *Hist, vals []uint64) {
	t.Helper()
	sorted := slices.Clone(vals)
	slices.Sort(sorted)
	if h.Count() != uint64(len(vals)) {
		t.Fatalf("count %d, want %d", h.Count(), len(vals))
	}
	if h.Min() != sorted[0] || h.Max() != sorted[len(sorted)-1] {
		t.Errorf("min/max %d/%d, want %d/%d", h.Min(), h.Max(), sorted[0], sorted[len(sorted)-1])
	}
	bound := h.RelativeError()
	for _, q := range quantiles {
		got, want := h.Quantile(q), exactQuantile(sorted, q)
		if err := math.Abs(float64(got)-float64(want)) / math.Max(float64(want), 1); err > bound ||
			want == 0 && got != 0 {
			t.Errorf("q%v = %d, exact %d: relative error %.5f > %.5f", q, got, want, err, bound)
		}
	}
}

func TestExactSmallValues(t *testing.T) {
	// Below 2^(p+1) every value has a bucket of its own: quantiles are exact.
	h := New()
	var vals []uint64
	for v := uint64(0); v < 256; v++ {
		for range v%5 + 1 {
			h.Record(v)
			vals = append(vals, v)
		}
	}
	slices.Sort(vals)
	for _, q := range quantiles {
		if got, want := h.Quantile(q), exactQuantile(vals, q); got != want {
			t.Errorf("q%v = %d, want exactly %d", q, got, want)
		}
	}
}

func TestKnownDistributions(t *testing.T) {
	// 1..100: p50 = 50, p90 = 90, p99 = 99 (nearest rank), exact below 256.
	h := New()
	for v := uint64(1); v <= 100; v++ {
		h.Record(v)
	}
	for q, want := range map[float64]uint64{0.5: 50, 0.9: 90, 0.99: 99, 0.29: 29, 1: 100, 0: 1} {
		if got := h.Quantile(q); got != want {
			t.Errorf("1..100: q%v = %d, want %d", q, got, want)
		}
	}

	// Latencies of an accept loop that sleeps 100ms per connection: k×100ms.
	h = New()
	for k := uint64(1); k <= 5; k++ {
		h.Record(k * 100_000_000)
	}
	for q, want := range map[float64]uint64{0.5: 300_000_000, 0.9: 500_000_000, 0.99: 500_000_000, 0.2: 100_000_000} {
		got := h.Quantile(q)
		if math.Abs(float64(got)-float64(want)) > float64(want)*h.RelativeError() {
			t.Errorf("k×100ms: q%v = %d, want %d ± %.2f%%", q, got, want, 100*h.RelativeError())
		}
	}
	if h.Quantile(1) != 500_000_000 || h.Quantile(0) != 100_000_000 {
		t.Errorf("min/max not exact: %d %d", h.Quantile(0), h.Quantile(1))
	}
}

func TestRelativeErrorBound(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	gen := map[string]func() uint64{
		"uniform 0-1e6":      func() uint64 { return rng.Uint64N(1_000_000) },
		"uniform 0-2^63":     func() uint64 { return rng.Uint64N(1 << 63) },
		"any uint64":         rng.Uint64,
		"exponential 50µs":   func() uint64 { return uint64(rng.ExpFloat64() * 50_000) },
		"lognormal ~1ms":     func() uint64 { return uint64(math.Exp(rng.NormFloat64()*2 + 14)) },
		"powers of two ±1":   func() uint64 { v := uint64(1) << rng.UintN(64); return v - 1 + rng.Uint64N(3)%max(v, 1) },
		"bimodal 100µs/2s":   func() uint64 { return []uint64{100_000, 2_000_000_000}[rng.UintN(2)] + rng.Uint64N(1000) },
		"constant 123456789": func() uint64 { return 123_456_789 },
	}
	for _, p := range []int{1, 3, DefaultPrecision, 10} {
		for name, g := range gen {
			for _, n := range []int{1, 2, 7, 100, 10_000} {
				h := NewPrecision(p)
				vals := make([]uint64, n)
				for i := range vals {
					vals[i] = g()
					h.Record(vals[i])
				}
				t.Run(name, func(t *testing.T) { checkQuantiles(t, h, vals) })
			}
		}
	}
}

func TestBoundaries(t *testing.T) {
	h := New()
	for _, v := range []uint64{0, 1, 255, 256, 257, 511, 512, 1<<32 - 1, 1 << 32, 1<<63 - 1, 1 << 63, math.MaxUint64} {
		i := h.index(v)
		lo, w := h.bounds(i)
		if v < lo || v-lo >= w {
			t.Errorf("value %d in bucket %d = [%d, %d+%d)", v, i, lo, lo, w)
		}
		if i > 0 {
			plo, pw := h.bounds(i - 1)
			if plo+pw != lo {
				t.Errorf("bucket %d ends at %d, bucket %d starts at %d", i-1, plo+pw, i, lo)
			}
		}
	}
	// Every bucket: contiguous, width a power of two, width/lo ≤ 2^-p.
	last := h.index(math.MaxUint64)
	var next uint64
	for i := 0; i <= last; i++ {
		lo, w := h.bounds(i)
		if lo != next || h.index(lo) != i || h.index(lo+w-1) != i {
			t.Fatalf("bucket %d = [%d, +%d): not contiguous with %d or not its own index", i, lo, w, next)
		}
		if w > 1 && float64(w)/float64(lo) > math.Ldexp(1, -DefaultPrecision) {
			t.Fatalf("bucket %d = [%d, +%d) wider than 2^-p of its low end", i, lo, w)
		}
		next = lo + w
	}
	if next != 0 { // wrapped past MaxUint64
		t.Fatalf("buckets end at %d, not at 2^64", next)
	}
	vals := []uint64{0, math.MaxUint64, math.MaxUint64 - 1, 1 << 63}
	for _, v := range vals {
		h.Record(v)
	}
	checkQuantiles(t, h, vals)
}

func TestMergeResetRecordN(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	a, b, all := New(), New(), New()
	var vals []uint64
	for i := range 5000 {
		v := rng.Uint64N(1 << uint(rng.UintN(40)+1))
		vals = append(vals, v)
		all.Record(v)
		if i%3 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
	}
	a.Merge(b)
	checkQuantiles(t, a, vals)
	for _, q := range quantiles {
		if a.Quantile(q) != all.Quantile(q) {
			t.Errorf("merged q%v = %d, recorded together %d", q, a.Quantile(q), all.Quantile(q))
		}
	}
	if math.Abs(a.Mean()-all.Mean()) > 1e-6*all.Mean() {
		t.Errorf("merged mean %v, want %v", a.Mean(), all.Mean())
	}

	a.Reset()
	if a.Count() != 0 || a.Quantile(0.5) != 0 || a.Max() != 0 || a.Log2().Count() != 0 {
		t.Errorf("after Reset: count %d p50 %d max %d", a.Count(), a.Quantile(0.5), a.Max())
	}
	a.RecordN(1000, 3)
	a.RecordN(7, 0)
	a.Record(10)
	checkQuantiles(t, a, []uint64{1000, 1000, 1000, 10})
}

func TestLog2(t *testing.T) {
	for _, c := range []struct {
		v    uint64
		slot int
	}{{0, 0}, {1, 0}, {2, 1}, {3, 1}, {4, 2}, {1023, 9}, {1024, 10}, {math.MaxUint64, 63}} {
		if got := Slot(c.v); got != c.slot {
			t.Errorf("Slot(%d) = %d, want %d", c.v, got, c.slot)
		}
		lo, hi := SlotBounds(c.slot)
		if c.v < lo || c.v > hi {
			t.Errorf("%d outside slot %d bounds [%d, %d]", c.v, c.slot, lo, hi)
		}
	}
	// Hist.Log2 is exact: same counts as recording into Log2 directly.
	rng := rand.New(rand.NewPCG(5, 6))
	h, direct := New(), &Log2{}
	for range 20_000 {
		v := rng.Uint64N(1 << uint(rng.UintN(63)+1))
		h.Record(v)
		direct.Record(v)
	}
	if got, want := h.Log2().Buckets(), direct.Buckets(); !slices.Equal(got, want) {
		t.Errorf("Hist.Log2 differs from direct log2 counts:\n%v\n%v", got, want)
	}
}

func TestLog2Write(t *testing.T) {
	var l Log2
	for _, v := range []uint64{2, 3, 3, 9, 9, 9, 9, 12} {
		l.Record(v)
	}
	var b bytes.Buffer
	if err := l.Write(&b, "usecs"); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"     usecs               : count    distribution\n" +
		"         2 -> 3          : 3        |************************                |\n" +
		"         4 -> 7          : 0        |                                        |\n" +
		"         8 -> 15         : 5        |****************************************|\n"
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	var empty Log2
	if err := empty.Write(&b, "usecs"); err != nil || b.Len() != 0 {
		t.Errorf("empty histogram printed %q", b.String())
	}
	var wide Log2
	wide.Record(1 << 40)
	b.Reset()
	_ = wide.Write(&b, "nsecs")
	if !strings.Contains(b.String(), "1099511627776 -> 2199023255551") || !strings.Contains(b.String(), "|********************|") {
		t.Errorf("wide histogram:\n%s", b.String())
	}
}

func BenchmarkRecord(b *testing.B) {
	h := New()
	for i := range b.N {
		h.Record(uint64(i) * 7919)
	}
}

// Buckets kept elsewhere (synq's BPF programs) rebuild a histogram whose
// statistics are within the precision's error of the exact ones.
func TestFromBuckets(t *testing.T) {
	const p = 2
	exact := NewPrecision(p)
	var counts []uint64
	for v := uint64(1000); v < 5_000_000; v = v*11/10 + 7 {
		exact.Record(v)
		i := Index(p, v)
		for len(counts) <= i {
			counts = append(counts, 0)
		}
		counts[i]++
	}
	got := FromBuckets(p, counts)
	if got.Count() != exact.Count() {
		t.Fatalf("count %d, want %d", got.Count(), exact.Count())
	}
	e := got.RelativeError()
	for _, q := range []float64{0, 0.25, 0.5, 0.9, 0.99, 1} {
		g, w := float64(got.Quantile(q)), float64(exact.Quantile(q))
		// min and max are bucket bounds: up to a whole bucket (2e) away.
		if d := math.Abs(g-w) / w; d > 2*e {
			t.Errorf("q%v: %v, exact %v (off by %.3f, bound %.3f)", q, g, w, d, 2*e)
		}
	}
	if d := math.Abs(got.Mean()-exact.Mean()) / exact.Mean(); d > e {
		t.Errorf("mean %v, exact %v", got.Mean(), exact.Mean())
	}
	if lo := BucketLow(p, Index(p, 1000)); lo > 1000 || float64(lo) < 1000*(1-2*e) {
		t.Errorf("BucketLow of 1000's bucket = %d", lo)
	}
}
