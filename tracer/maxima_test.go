package tracer_test

import (
	"context"
	"net"
	"os"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/synq-trace/synq/internal/netlab"
	"github.com/synq-trace/synq/tracer"
)

// synQueueHeld fills a TCP_DEFER_ACCEPT listener's SYN queue with k
// requests (the clients' final ACKs carry no data, so the kernel keeps the
// requests: tcp_check_req), checked against iter/tcp's qlen, then completes
// one more connection by sending data: its enqueue finds the k others still
// waiting. It returns the listener, the accepted connection closed.
func synQueueHeld(t *testing.T, s *session, k int) *netlab.Listener {
	t.Helper()
	l, err := s.ns.Listen("tcp4", "127.0.0.1:0", 64, netlab.SockoptInt(unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT, 30))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	res, err := s.ns.DialMany(context.Background(), l.String(), k, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Close() })
	if res.Established != k {
		t.Fatalf("deferred dials: %+v", res)
	}
	if got := hardListener(t, s.ns, l.Port()).SynQueueLen; got != uint32(k) {
		t.Fatalf("iter/tcp: SYN queue %d, want the %d deferred requests", got, k)
	}
	var c net.Conn
	if err := s.ns.Do(func() (err error) { c, err = net.Dial("tcp4", l.String()); return }); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitQueue(1, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	acceptClose(t, l, 1)
	return l
}

// The kernel keeps what top needs without streaming a record per
// connection: the SYN queue's exact peak (k requests waited while one
// connection was enqueued) and the task that accepted (this test).
func TestKernelMaximaSynQueueAndAcceptor(t *testing.T) {
	const k = 7
	s := newSessionWith(t, nil, tracer.Config{Kinds: []tracer.Kind{}, AcceptLatency: true})
	l := synQueueHeld(t, s, k)
	m, err := s.tr.Maxima()
	if err != nil {
		t.Fatal(err)
	}
	evs := s.stop()
	id := hardListener(t, s.ns, l.Port()).ID
	t.Logf("tier %s: maxima %+v, %d events", s.tr.Info().Tier, m[id], len(evs))
	if len(evs) != 0 {
		t.Errorf("%d events streamed with no kind asked for", len(evs))
	}
	if s.tr.Info().EnqueueListener && m[id].SynDepth != k {
		t.Errorf("SYN queue peak %d, want %d (the deferred requests when the data-carrying connection was enqueued)", m[id].SynDepth, k)
	}
	if !hasKind(s.tr.Info(), tracer.KindAccept) {
		t.Skipf("tier %s on this kernel sees no accepts (%v)", s.tr.Info().Tier, s.tr.Info().Notes)
	}
	if !slices.Equal(m[id].Acceptors, []uint32{uint32(os.Getpid())}) {
		t.Errorf("acceptors %v, want this test (pid %d)", m[id].Acceptors, os.Getpid())
	}
}

// NoMaxima (synq serve) keeps counts and histograms and no maxima.
func TestKernelNoMaxima(t *testing.T) {
	s := newSessionWith(t, nil, tracer.Config{Kinds: []tracer.Kind{}, AcceptLatency: true, NoMaxima: true})
	l := synQueueHeld(t, s, 3)
	s.stop()
	if m, err := s.tr.Maxima(); err == nil {
		t.Errorf("Maxima with NoMaxima: %v, no error", m)
	}
	id := hardListener(t, s.ns, l.Port()).ID
	c, err := s.tr.Counts()
	if err != nil {
		t.Fatal(err)
	}
	if c[id].Enqueue != 1 && s.tr.Info().EnqueueListener {
		t.Errorf("enqueues %d, want 1", c[id].Enqueue)
	}
}
