package tracer_test

import (
	"context"
	"slices"
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
	acceptClose(t, l, n)
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

// The issue this keeps fixed: maxima were bucket values (max 251.66 ms for
// a true 265.77 ms; "max 18" on a backlog-16 listener whose deepest enqueue
// was 17). A backlog-16 accept queue is filled to its kernel limit of 17
// (full means sk_ack_backlog > backlog), left for hold, then drained: the
// kernel's maxima are the exact deepest enqueue (17, where the histogram
// only knows [16, 20)) and exactly the longest latency the accept events
// carried. A second interval sees only its own accept.
func TestKernelExactMaxima(t *testing.T) {
	const backlog, n, hold = 16, 17, 265 * time.Millisecond
	s := newSession(t, nil)
	l := s.queued(backlog, n)
	time.Sleep(hold)
	acceptClose(t, l, n)
	time.Sleep(300 * time.Millisecond) // every event in the ring read
	first, err := s.tr.Maxima()
	if err != nil {
		t.Fatal(err)
	}
	// A second interval: one connection accepted at once.
	res, err := s.ns.DialMany(context.Background(), l.String(), 1, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	acceptClose(t, l, 1)
	evs := s.stop()
	second, err := s.tr.Maxima()
	if err != nil {
		t.Fatal(err)
	}
	id := hardListener(t, s.ns, l.Port()).ID
	m1, m2 := first[id], second[id]
	hs, err := s.tr.Histograms()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("maxima: first interval %+v, second %+v", m1, m2)

	if s.tr.Info().EnqueueListener {
		var deepest uint32
		for _, e := range evs {
			if e.Port == l.Port() && e.Kind == tracer.KindEnqueue && e.QueueKnown {
				deepest = max(deepest, e.AcceptQueueLen)
			}
		}
		if m1.Depth != n || deepest != n {
			t.Errorf("deepest enqueue: kernel max %d, events %d; want %d (backlog %d)", m1.Depth, deepest, n, backlog)
		}
		if m2.Depth != 1 {
			t.Errorf("second interval: deepest enqueue %d, want 1 (its only connection)", m2.Depth)
		}
		lat := hist.FromBuckets(tracer.HistPrecision, hs[id].Depth[:])
		t.Logf("depth histogram alone: max within [%d, %d]", hist.BucketLow(tracer.HistPrecision, hist.Index(tracer.HistPrecision, n)), lat.Max())
	}
	if !hasKind(s.tr.Info(), tracer.KindAccept) {
		t.Skipf("tier %s on this kernel sees no accepts (%v)", s.tr.Info().Tier, s.tr.Info().Notes)
	}
	var longest []time.Duration
	for _, e := range evs {
		if e.Port == l.Port() && e.Kind == tracer.KindAccept && e.LatencyKnown {
			longest = append(longest, e.Latency)
		}
	}
	if len(longest) != n+1 {
		t.Fatalf("%d accept events with a latency, want %d", len(longest), n+1)
	}
	want1 := slices.Max(longest[:n])
	if m1.Latency != want1 || m1.Latency < hold {
		t.Errorf("first interval: kernel max latency %v, accept events' longest %v (held %v)", m1.Latency, want1, hold)
	}
	if m2.Latency != longest[n] {
		t.Errorf("second interval: kernel max latency %v, its accept event %v", m2.Latency, longest[n])
	}
	if len(second) != 1 {
		t.Errorf("second interval: maxima for %d listeners, want 1: %v", len(second), second)
	}
}
