package tracer_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/synq-trace/synq/internal/netlab"
	"github.com/synq-trace/synq/tracer"
	"golang.org/x/sys/unix"
)

// Children that die unaccepted (their listener closed with them queued) must
// not lend their enqueue to a later socket at the same kernel address: in the
// traced netns A, 1000 × { listen(1), 5 non-blocking connects, accept one,
// close the listener with the rest queued } while netns B, not traced,
// accepts as fast as it can from its own churn. synq must count exactly
// A's 1000 accepts — in the event stream, in the per-listener counters and
// in the latency histograms — and each accept's latency must lie within its
// own round (the enqueue it is measured from happened in that round). No
// enqueue record may outlive its child.
//
// Once, every B accept of a child at the address of a forgotten A child
// matched A's stale enqueue record: the tracepoint tier counted it under
// A's closed listener (1,454 accepts for 1,000), and every tier gave it that
// record's latency.
func TestKernelAcceptAttributionAcrossNetns(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  tracer.Config
	}{
		// as `synq trace` opens it: every kind streamed
		{"trace", tracer.Config{}},
		// as `synq serve` opens it: accepts counted in the kernel, not streamed
		{"serve", tracer.Config{Kinds: []tracer.Kind{tracer.KindAckOverflow}, AcceptLatency: true,
			WakeupBytes: 64 << 10, PollInterval: 100 * time.Millisecond}},
	} {
		t.Run(c.name, func(t *testing.T) { acceptAttribution(t, c.cfg) })
	}
}

func acceptAttribution(t *testing.T, cfg tracer.Config) {
	s := newSessionWith(t, nil, cfg)
	if !hasKind(s.tr.Info(), tracer.KindAccept) {
		t.Skipf("tier %s sees no accepts here", s.tr.Info().Tier)
	}
	a := s.ns
	b, err := netlab.New("")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	bl, err := b.Listen("tcp4", "127.0.0.1:0", 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer bl.Close()
	srv := netlab.Serve(bl, netlab.ServerConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var churned int
	wg.Go(func() { churned = b.Churn(ctx, bl.String(), 4, time.Hour) })

	const rounds = 1000
	var accepted int
	var span time.Duration // sum of the rounds' durations: a bound on the latencies
	for i := range rounds {
		start := time.Now()
		l, err := a.Listen("tcp4", "127.0.0.1:0", 1)
		if err != nil {
			t.Fatal(err)
		}
		fds := make([]int, 0, 5)
		for range 5 {
			fd, err := a.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			fds = append(fds, fd)
			err = unix.Connect(fd, &unix.SockaddrInet4{Port: int(l.Port()), Addr: [4]byte{127, 0, 0, 1}})
			if err != nil && err != unix.EINPROGRESS {
				t.Fatalf("round %d: connect: %v", i, err)
			}
		}
		// Two children fit a backlog of 1: accept one, leave the other
		// queued for close(2) to forget.
		if err := l.WaitQueue(2, 2*time.Second); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		conn, err := l.Accept()
		if err != nil {
			t.Fatalf("round %d: accept: %v", i, err)
		}
		accepted++
		span += time.Since(start)
		conn.Close()
		l.Close()
		for _, fd := range fds {
			_ = unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
			unix.Close(fd)
		}
	}
	cancel()
	wg.Wait()
	srv.Stop()
	evs := s.stop()

	var events, outside int
	var evLatency time.Duration
	for _, e := range evs {
		if e.Kind != tracer.KindAccept {
			continue
		}
		events++
		if e.Netns != uint32(a.Inode()) || e.Port == 0 {
			outside++
		}
		evLatency += e.Latency
	}
	counts, err := s.tr.Counts()
	if err != nil {
		t.Fatal(err)
	}
	var counted uint64
	for _, c := range counts {
		counted += c.Accept
	}
	hists, err := s.tr.Histograms()
	if err != nil {
		t.Fatal(err)
	}
	var histAccepts, noLatency uint64
	var histSum time.Duration
	for _, h := range hists {
		histAccepts += h.Accepts()
		noLatency += h.NoLatency
		histSum += h.LatencySum
	}
	t.Logf("netns A accepted %d; synq: %d accept events (%d not A's or without a port), counters %d, histograms %d (%d without latency); latency sum %v (events %v) over rounds lasting %v; netns B accepted %d of %d churned",
		accepted, events, outside, counted, histAccepts, noLatency, histSum, evLatency, span, srv.Accepts(), churned)
	if srv.Accepts() == 0 {
		t.Fatal("netns B accepted nothing: the test did not run what it claims")
	}
	if len(cfg.Kinds) == 0 && (events != accepted || outside != 0) {
		t.Errorf("%d accept events (%d not of A's listeners), A accepted %d", events, outside, accepted)
	}
	if counted != uint64(accepted) {
		t.Errorf("per-listener counters: %d accepts, A accepted %d", counted, accepted)
	}
	if histAccepts != uint64(accepted) || noLatency != 0 {
		t.Errorf("histograms: %d accepts (%d without latency), A accepted %d, all enqueued while traced", histAccepts, noLatency, accepted)
	}
	// Every child of A was accepted (its record read and deleted) or freed
	// by close(2) of its listener: no record may outlive it.
	if n, err := tracer.EnqueuedChildren(s.tr); err != nil {
		t.Fatal(err)
	} else if n != 0 {
		t.Errorf("%d enqueue records outlive their children", n)
	}
	if histSum > span || evLatency > span {
		t.Errorf("accept latencies sum to %v (histograms) and %v (events), more than the %v the rounds lasted", histSum, evLatency, span)
	}
}
