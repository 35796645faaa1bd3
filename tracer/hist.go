package tracer

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
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
	return readListeners(t.maps["listener_hist"], "histograms", func(v tpSynqHist) (*Histogram, bool) {
		return &Histogram{Latency: v.Latency, Depth: v.Depth, NoLatency: v.NoLatency,
			LatencySum: time.Duration(v.LatencySumNs)}, true
	})
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

// Max is a listener's exact largest values over an interval (Maxima).
type Max struct {
	// Latency is the longest accept latency; 0 when no accept with a
	// known latency was counted.
	Latency time.Duration
	// Depth is the deepest accept queue an enqueue saw, the new child
	// included; 0 when no enqueue was counted.
	Depth uint32
	// SynDepth is the deepest SYN queue (requests waiting for their final
	// ACK) seen at an enqueue (the child's own request gone) and, on the
	// fentry and kprobe tiers, at a SYN (before it is queued); 0 when
	// neither was seen.
	SynDepth uint32
	// Acceptors: the tasks (tgid) that accepted from the listener in the
	// interval, the last one per CPU (so at most one per CPU), in no
	// order; nil when no accept was counted.
	Acceptors []uint32
}

// Maxima returns every listener's exact maxima since the previous call (the
// first call: since the tracer attached), keyed like Histograms. The kernel
// keeps them per CPU in two epochs: Maxima starts the next epoch, waits until
// no program can still write the one it ends (an RCU grace period: BPF
// programs run inside RCU read-side sections), then reads it. One caller at
// a time per Tracer.
func (t *Tracer) Maxima() (map[ListenerID]Max, error) {
	if t.cfg.NoMaxima {
		return nil, errors.New("maxima: the tracer was opened with NoMaxima")
	}
	em := t.maps["max_epoch"]
	var zero uint32
	var epoch uint64
	if err := em.Lookup(&zero, &epoch); err != nil {
		return nil, fmt.Errorf("read maxima epoch: %w", err)
	}
	if err := em.Update(&zero, epoch+1, ebpf.UpdateAny); err != nil {
		return nil, fmt.Errorf("start maxima epoch: %w", err)
	}
	if err := rcuGracePeriod(); err != nil {
		return nil, err
	}
	return readListeners(t.maps["listener_max"], "maxima", func(per []tpSynqMax) (Max, bool) {
		var m Max
		for i := range per {
			s := &per[i].Slot[epoch&1]
			if s.Epoch != epoch {
				continue // this CPU saw nothing of the listener in the epoch
			}
			m.Latency = max(m.Latency, time.Duration(s.LatencyNs))
			m.Depth = max(m.Depth, s.Depth)
			m.SynDepth = max(m.SynDepth, s.SynDepth)
			if s.AccPid != 0 && !slices.Contains(m.Acceptors, s.AccPid) {
				m.Acceptors = append(m.Acceptors, s.AccPid)
			}
		}
		return m, m.Latency != 0 || m.Depth != 0 || m.SynDepth != 0 || m.Acceptors != nil
	})
}

// membarrierCmdGlobal is MEMBARRIER_CMD_GLOBAL (include/uapi/linux/membarrier.h):
// kernel/sched/membarrier.c answers it with synchronize_rcu().
const membarrierCmdGlobal = 1

// rcuGracePeriod returns once every RCU read-side section running when it
// was called has ended. MEMBARRIER_CMD_GLOBAL is refused on nohz_full
// kernels (EINVAL); there, a BPF program's run (microseconds, never
// sleeping) is waited out instead.
func rcuGracePeriod() error {
	_, _, errno := unix.Syscall(unix.SYS_MEMBARRIER, membarrierCmdGlobal, 0, 0)
	switch errno {
	case 0:
		return nil
	case unix.EINVAL, unix.ENOSYS:
		time.Sleep(50 * time.Millisecond)
		return nil
	}
	return fmt.Errorf("membarrier: %w", errno)
}
