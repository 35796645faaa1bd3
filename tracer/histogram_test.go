package tracer_test

import (
	"testing"
	"time"

	"github.com/synq-trace/synq/internal/hist"
	"github.com/synq-trace/synq/tracer"
)

// n connections complete their handshakes while the application does not
// accept, so the accept queue grows 1, 2, ..., n; after hold they are all
// accepted. With the stream sampled (one accept and enqueue event in 7), the
// in-kernel histograms still hold every enqueue depth and every accept
// latency, and Counts every accept.
func TestKernelHistogramsSampled(t *testing.T) {
	const n, hold, sample = 60, 200 * time.Millisecond, 7
	s := newSessionWith(t, nil, tracer.Config{SampleEvery: sample})
	l := s.queued(128, n)
	time.Sleep(hold)
	start := time.Now()
	for i := 0; i < n; i++ {
		c, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	slowest := hold + time.Since(start) + 2*time.Second // the dials spread over up to 2 s
	evs := s.stop()

	snap := hardListener(t, s.ns, l.Port())
	hs, err := s.tr.Histograms()
	if err != nil {
		t.Fatal(err)
	}
	counts, err := s.tr.Counts()
	if err != nil {
		t.Fatal(err)
	}
	h, c := hs[snap.ID], counts[snap.ID]
	if h == nil {
		t.Fatalf("no histogram for %s (%d listeners have one)", l, len(hs))
	}
	streamed := countKind(evs, l.Port(), tracer.KindEnqueue, 0)
	t.Logf("counts %+v; streamed %d of %d enqueues; histogram: %d accepts, %d without latency", c, streamed, n, h.Accepts(), h.NoLatency)

	// Sampling thins the stream, not the aggregates.
	if streamed == 0 || streamed >= n {
		t.Errorf("%d enqueue events streamed with 1 in %d sampled, want between 1 and %d", streamed, sample, n-1)
	}
	if !s.tr.Info().EnqueueListener {
		// Enqueues are counted under listener 0, without depths.
		if un := counts[0].Enqueue; un != n || c.Enqueue != 0 || h.Depth != [tracer.DepthBuckets]uint64{} {
			t.Errorf("tier %s without sk_data_ready: %d unattributed enqueues, %d attributed, depths %v; want %d, 0, none", s.tr.Info().Tier, un, c.Enqueue, h.Depth, n)
		}
		checkAcceptHistogram(t, s, h, c, n, hold, slowest)
		return
	}
	if c.Enqueue != n {
		t.Errorf("kernel counted %d enqueues, want %d", c.Enqueue, n)
	}
	// Depths: the j-th child to enter the queue sees at least j children
	// (itself and those before it: nobody accepts yet) and at most n.
	// Alone it sees exactly j; two CPUs enqueueing together may both read
	// the later length. So: n readings, none above n, the last one in n's
	// bucket, and at most k readings of k or less, for every bucket's top k.
	var total, cum uint64
	last := -1
	for b, cnt := range h.Depth {
		total += cnt
		cum += cnt
		if cnt > 0 {
			last = b
		}
		top := hist.BucketLow(tracer.HistPrecision, b+1) - 1
		if cum > min(top, n) {
			t.Errorf("%d enqueues saw a depth of %d or less; at most %d can (depth buckets %v)", cum, top, min(top, n), h.Depth)
			break
		}
	}
	if total != n || last != hist.Index(tracer.HistPrecision, n) {
		t.Errorf("depth buckets %v: %d readings, the deepest in bucket %d; want %d, the deepest in bucket %d (depth %d)",
			h.Depth, total, last, n, hist.Index(tracer.HistPrecision, n), n)
	}

	checkAcceptHistogram(t, s, h, c, n, hold, slowest)
}

// checkAcceptHistogram: every accept counted, with a latency between hold
// and slowest (to the histogram's precision).
func checkAcceptHistogram(t *testing.T, s *session, h *tracer.Histogram, c tracer.Counts, n uint64, hold, slowest time.Duration) {
	t.Helper()
	if !hasKind(s.tr.Info(), tracer.KindAccept) {
		t.Skipf("tier %s on this kernel sees no accepts (%v)", s.tr.Info().Tier, s.tr.Info().Notes)
	}
	if c.Accept != n || h.Accepts() != n || h.NoLatency != 0 {
		t.Errorf("accepts: counted %d, histogram %d (%d without latency), want %d with latency", c.Accept, h.Accepts(), h.NoLatency, n)
	}
	lat := hist.FromBuckets(tracer.HistPrecision, h.Latency[:])
	lo, hi := time.Duration(lat.Min()), time.Duration(lat.Max())
	// Each bucket is within 12.5% (HistPrecision 2) of its values.
	if float64(hi) < float64(hold)*(1-lat.RelativeError()) || float64(lo) > float64(slowest)*(1+lat.RelativeError()) {
		t.Errorf("latency buckets span [%v, %v], every accept waited between %v and %v", lo, hi, hold, slowest)
	}
	if float64(lo) < float64(hold)*(1-2*lat.RelativeError()) {
		t.Errorf("lowest latency bucket starts at %v, below the %v every connection waited", lo, hold)
	}
}
