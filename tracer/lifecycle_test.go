package tracer_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/synq-trace/synq/internal/kerneltest"
	"github.com/synq-trace/synq/internal/netlab"
	"github.com/synq-trace/synq/tracer"
)

// Close leaves no program or map behind: every program the tracer loaded,
// and every map they used, is gone from the kernel afterwards (links hold
// the only other references).
func TestKernelCloseReleasesPrograms(t *testing.T) {
	kerneltest.Root(t)
	tr, err := tracer.Open(tracer.Config{Tier: kerneltest.Tier(t)})
	if err != nil {
		t.Skipf("tier not available: %v", err)
	}
	var ids []ebpf.ProgramID
	maps := map[ebpf.MapID]bool{}
	for name, p := range tr.Programs() {
		info, err := p.Info()
		if err != nil {
			t.Fatal(err)
		}
		id, ok := info.ID()
		if !ok {
			t.Skip("kernel does not report program IDs")
		}
		t.Logf("%s: id %d", name, id)
		ids = append(ids, id)
		mids, ok := info.MapIDs()
		if !ok {
			t.Skip("kernel does not report the maps of a program")
		}
		for _, m := range mids {
			maps[m] = true
		}
	}
	if len(ids) == 0 {
		t.Fatal("tracer attached no program")
	}
	tr.Close()
	// Program release is deferred to an RCU grace period.
	deadline := time.Now().Add(5 * time.Second)
	for _, id := range ids {
		for {
			p, err := ebpf.NewProgramFromID(id)
			if errors.Is(err, os.ErrNotExist) {
				break
			}
			if err == nil {
				p.Close()
			}
			if time.Now().After(deadline) {
				t.Fatalf("program %d still loaded after Close (err %v)", id, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// Maps are freed from a workqueue once programs no longer hold them.
	// cilium/ebpf (v0.22) memory-maps each program's .rodata to set its
	// constants and unmaps it in a GC cleanup, not in Map.Close: that
	// mapping keeps the .rodata maps alive until the next GC.
	runtime.GC()
	t.Logf("%d maps used by the programs", len(maps))
	for id := range maps {
		for {
			m, err := ebpf.NewMapFromID(id)
			if errors.Is(err, os.ErrNotExist) {
				break
			}
			var what string
			if err == nil {
				if mi, ierr := m.Info(); ierr == nil {
					what = fmt.Sprintf("%s %s", mi.Type, mi.Name)
				}
				m.Close()
			}
			if time.Now().After(deadline) {
				t.Fatalf("map %d (%s) still exists after Close (err %v)", id, what, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// A ring buffer too small for the traffic and a reader that does not read:
// every record that did not fit is counted, so delivered + lost equals what
// the kernel counted.
func TestKernelLostRecordsCounted(t *testing.T) {
	ns := kerneltest.Netns(t, nil)
	tr, err := tracer.Open(tracer.Config{Tier: kerneltest.Tier(t), Netns: uint32(ns.Inode()),
		Kinds: []tracer.Kind{tracer.KindEnqueue}, RingBytes: os.Getpagesize()})
	if err != nil {
		t.Skipf("tier not available: %v", err)
	}
	defer tr.Close()
	l := kerneltest.Listen(t, ns, "tcp4", "127.0.0.1:0", 4096)
	srv := netlab.Serve(l, netlab.ServerConfig{})
	defer srv.Stop()
	// No one reads while the connections churn.
	n := ns.Churn(context.Background(), l.Addr().String(), 4, time.Second)
	srv.WaitAccepts(int64(n), 5*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	var delivered uint64
	if err := tr.Read(ctx, func(ev *tracer.Event) {
		if ev.Kind != tracer.KindEnqueue {
			t.Errorf("got a %s event, only enqueue was asked for", ev.Kind)
		}
		delivered++
	}); err != nil {
		t.Fatal(err)
	}
	st, err := tr.Stats()
	if err != nil {
		t.Fatal(err)
	}
	_, enq := sumCounts(t, tr, func(c tracer.Counts) uint64 { return c.Enqueue })
	t.Logf("%d connections; kernel counted %d enqueues; delivered %d, lost %d", n, enq, delivered, st.Lost)
	if st.Lost == 0 {
		t.Fatalf("a %d-byte ring buffer took %d records without loss: the test did not overflow it", os.Getpagesize(), delivered)
	}
	if delivered+st.Lost != enq {
		t.Errorf("delivered %d + lost %d != %d enqueues counted in the kernel", delivered, st.Lost, enq)
	}
	// Every accepted connection was enqueued first (the server may still
	// be accepting the last few). The tracepoint tier pairs a child with its
	// listener through sk_data_ready, which the kernel skips when the
	// application already holds the child's lock (tcp_child_process): it may
	// miss a few.
	acc := uint64(srv.Accepts())
	if tr.Info().Tier != tracer.TierTracepoint && enq < acc {
		t.Errorf("kernel counted %d enqueues, the server accepted %d", enq, acc)
	}
	if enq < acc*99/100 {
		t.Errorf("kernel counted %d enqueues, the server accepted %d", enq, acc)
	}
}

// Batched wakeups: with a poll interval far longer than the test, records
// still arrive once they pass the watermark, because the record that
// crosses it wakes the reader. Only what is left under the last crossing
// waits for the poll.
func TestKernelWatermarkWakeup(t *testing.T) {
	const n, watermark = 400, 8 << 10
	s := newSessionWith(t, nil, tracer.Config{WakeupBytes: watermark, PollInterval: time.Hour})
	l := s.queued(1024, n)
	srv := netlab.Serve(l, netlab.ServerConfig{})
	defer srv.Stop()
	if !srv.WaitAccepts(n, 5*time.Second) {
		t.Fatalf("accepted %d of %d", srv.Accepts(), n)
	}
	_, total := sumCounts(t, s.tr, func(c tracer.Counts) uint64 { return c.Enqueue + c.Accept + c.Syn })
	// A record is 120 bytes in the ring: all but the last < watermark.
	want := total - watermark/120 - 2
	deadline := time.Now().Add(3 * time.Second)
	var got int
	for time.Now().Before(deadline) {
		s.mu.Lock()
		got = len(s.events)
		s.mu.Unlock()
		if uint64(got) >= want {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("%d records counted in the kernel, %d delivered within 3 s with a 1 h poll and a %d-byte watermark", total, got, watermark)
	if uint64(got) < want {
		t.Errorf("%d of %d records delivered: the reader was not woken at the watermark", got, total)
	}
	s.cancel()
	<-s.done
}

// The tracepoint tier hooks accept(2) only when accepts are streamed: its
// syscall tracepoints slow every syscall on the host while attached.
func TestKernelAcceptHookOnlyWhenStreamed(t *testing.T) {
	kerneltest.Root(t)
	for _, c := range []struct {
		kinds []tracer.Kind
		want  bool
	}{{nil, true}, {[]tracer.Kind{tracer.KindAccept}, true}, {[]tracer.Kind{tracer.KindEnqueue, tracer.KindAckOverflow}, false}, {[]tracer.Kind{}, false}} {
		tr, err := tracer.Open(tracer.Config{Tier: kerneltest.Tier(t), Kinds: c.kinds})
		if err != nil {
			t.Skipf("tier not available: %v", err)
		}
		info := tr.Info()
		tr.Close()
		got := false
		for _, h := range info.Hooks {
			if strings.Contains(h.Target, "accept") && h.Err == nil {
				got = true
			}
		}
		if info.Tier == tracer.TierTracepoint && got != c.want {
			t.Errorf("kinds %v: accept hooked %v, want %v (hooks %+v)", c.kinds, got, c.want, info.Hooks)
		}
		if info.Tier != tracer.TierTracepoint && !got {
			t.Errorf("tier %s, kinds %v: accept not hooked (its hook costs nothing outside accept)", info.Tier, c.kinds)
		}
	}
}

// sumCounts reads the per-listener counters and sums what of sums over all
// listeners.
func sumCounts(t *testing.T, tr *tracer.Tracer, of func(tracer.Counts) uint64) (map[tracer.ListenerID]tracer.Counts, uint64) {
	t.Helper()
	counts, err := tr.Counts()
	if err != nil {
		t.Fatal(err)
	}
	var sum uint64
	for _, c := range counts {
		sum += of(c)
	}
	return counts, sum
}
