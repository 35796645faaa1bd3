package bench

import (
	"encoding/binary"
	"io"
	"testing"
	"time"

	"github.com/synq-trace/synq/internal/aggregate"
	"github.com/synq-trace/synq/internal/exporter"
	"github.com/synq-trace/synq/internal/ledger"
	"github.com/synq-trace/synq/internal/render"
	"github.com/synq-trace/synq/tracer"
)

// record encodes one ring-buffer record in the layout of struct synq_event
// (bpf/synq.h) as tracer.Decode reads it; the generated Go struct is
// unexported, so the offsets are spelled out here.
func record(kind tracer.Kind, listener uint64, lport, rport uint16, latency uint64) []byte {
	b := make([]byte, tracer.RecordSize)
	le := binary.LittleEndian
	le.PutUint64(b[0:], 123456789)   // time_ns
	le.PutUint64(b[8:], listener)    // listener
	le.PutUint64(b[16:], latency)    // latency_ns
	le.PutUint32(b[24:], 4026531840) // netns
	le.PutUint32(b[28:], 3)          // acc_len
	le.PutUint32(b[32:], 4096)       // acc_max
	le.PutUint32(b[36:], 1)          // syn_len
	le.PutUint32(b[44:], 4242)       // pid
	le.PutUint16(b[48:], 2)          // AF_INET
	le.PutUint16(b[50:], lport)
	le.PutUint16(b[52:], rport)
	b[54] = byte(kind)
	copy(b[56:], []byte{127, 0, 0, 1})
	copy(b[72:], []byte{127, 0, 0, 1})
	copy(b[92:], "synq-bench")
	return b
}

// workload is what `synq trace` streams on the tracepoint tier for a churn
// load: one enqueue and one accept per connection, over 64 listeners.
func workload(kinds ...tracer.Kind) [][]byte {
	var recs [][]byte
	for i := range 1024 {
		l := uint64(0xffff0000 + i%64)
		k := kinds[i%len(kinds)]
		recs = append(recs, record(k, l, uint16(8000+i%64), uint16(10000+i), uint64(1000+i*37)))
	}
	return recs
}

func reportRate(b *testing.B) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, "events/s")
	}
}

// benchSource is an exporter.Source with no kernel behind it: `synq serve`'s
// per-event work (Exporter.Observe) does not read it.
type benchSource struct{ info tracer.Info }

func (s benchSource) Info() tracer.Info { return s.info }
func (benchSource) Counts() (map[tracer.ListenerID]tracer.Counts, error) {
	return map[tracer.ListenerID]tracer.Counts{}, nil
}
func (benchSource) Histograms() (map[tracer.ListenerID]*tracer.Histogram, error) {
	return map[tracer.ListenerID]*tracer.Histogram{}, nil
}
func (benchSource) Stats() (tracer.Stats, error) { return tracer.Stats{}, nil }
func (benchSource) Walk() (*ledger.View, error)  { return &ledger.View{}, nil }
func (benchSource) Owners(time.Time, map[uint64]bool) (map[uint64][]aggregate.Owner, exporter.OwnerReport) {
	return nil, exporter.OwnerReport{}
}

// BenchmarkReader measures the user-space cost per event after the ring
// buffer hands over a record: tracer.Decode, then what each command does with
// the event (top, serve, latency). One goroutine, so events/s is per core.
func BenchmarkReader(b *testing.B) {
	info := tracer.Info{Tier: tracer.TierTracepoint}
	for _, c := range []struct {
		name  string
		kinds []tracer.Kind
	}{
		{"enqueue", []tracer.Kind{tracer.KindEnqueue}},
		{"accept", []tracer.Kind{tracer.KindAccept}},
		{"enqueue+accept", []tracer.Kind{tracer.KindEnqueue, tracer.KindAccept}},
	} {
		recs := workload(c.kinds...)
		// What each command does with a decoded event; decode alone first.
		for _, consumer := range []struct {
			name    string
			observe func(b *testing.B) func(*tracer.Event)
		}{
			{"decode", func(*testing.B) func(*tracer.Event) { return func(*tracer.Event) {} }},
			{"decode+top", func(*testing.B) func(*tracer.Event) { return aggregate.NewTop(info, time.Now(), nil).Observe }},
			{"decode+serve", func(b *testing.B) func(*tracer.Event) {
				exp, err := exporter.New(benchSource{info}, exporter.Options{})
				if err != nil {
					b.Fatal(err)
				}
				return exp.Observe
			}},
			{"decode+latency", func(*testing.B) func(*tracer.Event) { return aggregate.NewLatency(aggregate.ByListener).Observe }},
			{"decode+trace-json", func(*testing.B) func(*tracer.Event) {
				ew := render.NewEventWriter(io.Discard, render.JSON)
				return func(ev *tracer.Event) { _ = ew.Write(ev) }
			}},
			// What `synq trace --output json` writes through: the
			// buffer flushed at most 100 ms after an event.
			{"decode+trace-json-buffered", func(*testing.B) func(*tracer.Event) {
				ew := render.NewEventWriter(render.NewFlushingWriter(io.Discard, 64<<10, 100*time.Millisecond), render.JSON)
				return func(ev *tracer.Event) { _ = ew.Write(ev) }
			}},
		} {
			b.Run(consumer.name+"/"+c.name, func(b *testing.B) {
				observe := consumer.observe(b)
				var ev tracer.Event
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if err := tracer.Decode(recs[i&1023], time.Hour, &ev); err != nil {
						b.Fatal(err)
					}
					observe(&ev)
					i++
				}
				reportRate(b)
			})
		}
	}
}
