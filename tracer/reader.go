package tracer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
)

// Read decodes events from the ring buffer and calls fn for each, until ctx
// is done or the tracer is closed. fn must not keep ev past the call. Records
// that fail to decode are counted (see Stats) and skipped.
func (t *Tracer) Read(ctx context.Context, fn func(ev *Event)) error {
	stop := context.AfterFunc(ctx, func() { t.reader.Close() })
	defer stop()
	var rec ringbuf.Record
	var ev Event
	// The kernel wakes us only past the watermark: poll the rest. The
	// deadline is renewed when it expires, not per record (a clock read and
	// a lock per record in a storm): a reader that drains the ring after it
	// passed polls once at once, then waits a full interval again.
	poll := func() {
		if t.cfg.WakeupBytes > 0 {
			t.reader.SetDeadline(time.Now().Add(t.cfg.PollInterval))
		}
	}
	poll()
	for {
		err := t.reader.ReadInto(&rec)
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded):
			poll()
			continue
		case errors.Is(err, ringbuf.ErrClosed):
			return nil
		default:
			return fmt.Errorf("read ring buffer: %w", err)
		}
		if err := Decode(rec.RawSample, t.bootOffset, &ev); err != nil {
			t.badRecords.Add(1)
			continue
		}
		fn(&ev)
	}
}

// Stats counts what the tracer could not deliver. None of it is silent.
type Stats struct {
	// Lost: records the kernel could not reserve in the ring buffer.
	Lost uint64
	// RecursionMisses: program runs the kernel skipped because a BPF
	// program was already running on that CPU (tp_btf/fentry).
	RecursionMisses uint64
	// BadRecords: records that did not decode.
	BadRecords uint64
}

// Stats sums the loss counters.
func (t *Tracer) Stats() (Stats, error) {
	var s Stats
	var per []uint64
	if err := t.maps["lost"].Lookup(uint32(0), &per); err != nil {
		return s, fmt.Errorf("read lost counter: %w", err)
	}
	for _, v := range per {
		s.Lost += v
	}
	for _, p := range t.progs {
		st, err := p.Stats()
		if err != nil {
			continue
		}
		s.RecursionMisses += st.RecursionMisses
	}
	s.BadRecords = t.badRecords.Load()
	return s, nil
}

// Counts are per-listener counters kept in the kernel, exact whatever
// happened to the event stream.
type Counts struct {
	Syn, Cookie, SynackRetrans, Enqueue, AckOverflow, Accept uint64
	// SYN-side drops by reason.
	DropSynQueue, DropAcceptQueue, DropOther uint64
	// RcvDrops: packets dropped in tcp_v{4,6}_rcv with this listener as the
	// receiving socket (tracepoint tier bookkeeping, see ListenDrops).
	RcvDrops uint64
	// AckOther: final ACKs that failed to create a child for another reason
	// than a full accept queue (ListenDrops without ListenOverflows).
	AckOther uint64
}

// SynDrops is the sum of SYN-side drops of every reason.
func (c Counts) SynDrops() uint64 { return c.DropSynQueue + c.DropAcceptQueue + c.DropOther }

func (c *Counts) add(n *tpSynqCounts) {
	c.Syn += n.N[KindSyn]
	c.Cookie += n.N[KindCookie]
	c.SynackRetrans += n.N[KindSynackRetrans]
	c.Enqueue += n.N[KindEnqueue]
	c.AckOverflow += n.N[KindAckOverflow]
	c.Accept += n.N[KindAccept]
	c.DropSynQueue += n.N[tpSynqCounterSYNQ_CNT_DROP_SYNQ]
	c.DropAcceptQueue += n.N[tpSynqCounterSYNQ_CNT_DROP_ACCQ]
	c.DropOther += n.N[tpSynqCounterSYNQ_CNT_DROP_OTHER]
	c.RcvDrops += n.N[tpSynqCounterSYNQ_CNT_RCV_DROPS]
	c.AckOther += n.N[tpSynqCounterSYNQ_CNT_ACK_OTHER]
}

// Counts reads the per-listener counters. They are keyed by the listener's
// kernel address, which the kernel reuses: a listener at the address of a
// closed one continues its counters. Consumers that track listeners across
// snapshots tell them apart by Listener.Inode and take deltas.
func (t *Tracer) Counts() (map[ListenerID]Counts, error) {
	return readListeners(t.maps["listener_counts"], "counters", func(per []tpSynqCounts) (Counts, bool) {
		var c Counts
		for i := range per {
			c.add(&per[i])
		}
		return c, true
	})
}

// readListeners reads a map keyed by listener, turning each value into what
// f returns; an entry f does not keep (false) is left out.
func readListeners[V, T any](m *ebpf.Map, what string, f func(V) (T, bool)) (map[ListenerID]T, error) {
	out := map[ListenerID]T{}
	var key uint64
	var v V
	it := m.Iterate()
	for it.Next(&key, &v) {
		if x, ok := f(v); ok {
			out[ListenerID(key)] = x
		}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read listener %s: %w", what, err)
	}
	return out, nil
}

// Programs returns the attached programs by name (for benchmarks reading
// run time and run count).
func (t *Tracer) Programs() map[string]*ebpf.Program { return t.progs }
