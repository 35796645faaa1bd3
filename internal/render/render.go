// Package render turns tracer events and listener snapshots into the lines
// operators read (aligned text) and machines read (JSON lines).
package render

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/synq-trace/synq/tracer"
)

// Format is an output format.
type Format string

const (
	Text Format = "text"
	JSON Format = "json"
)

// ParseFormat validates an --output value.
func ParseFormat(s string) (Format, error) {
	switch Format(s) {
	case Text, JSON:
		return Format(s), nil
	}
	return "", fmt.Errorf("unknown output %q (want text or json)", s)
}

// EventJSON is the JSON shape of an event: snake_case, units in the names.
type EventJSON struct {
	TimeNs         int64   `json:"time_ns"`
	Kind           string  `json:"kind"`
	Reason         string  `json:"reason,omitempty"`
	Netns          uint32  `json:"netns"`
	Addr           string  `json:"addr"`
	Port           uint16  `json:"port"`
	Peer           string  `json:"peer,omitempty"`
	AcceptQueueLen *uint32 `json:"accept_queue_len,omitempty"`
	AcceptQueueMax *uint32 `json:"accept_queue_max,omitempty"`
	SynQueueLen    *uint32 `json:"syn_queue_len,omitempty"`
	SynQueueMax    *uint32 `json:"syn_queue_max,omitempty"`
	SkDrops        *uint32 `json:"sk_drops,omitempty"`
	LatencyNs      *int64  `json:"latency_ns,omitempty"`
	PID            uint32  `json:"pid,omitempty"`
	Comm           string  `json:"comm,omitempty"`
}

// NewEventJSON converts an event.
func NewEventJSON(ev *tracer.Event) EventJSON {
	j := EventJSON{
		TimeNs: ev.Time.UnixNano(),
		Kind:   ev.Kind.String(),
		Reason: ev.Reason.String(),
		Netns:  ev.Netns,
		Addr:   ev.Addr.String(),
		Port:   ev.Port,
		PID:    ev.PID,
		Comm:   ev.Comm.String(),
	}
	if ev.Peer.IsValid() {
		j.Peer = ev.Peer.String()
	}
	if ev.QueueKnown {
		// The SYN queue is full when qlen > sk_max_ack_backlog (hookmap §1).
		j.AcceptQueueLen, j.AcceptQueueMax = &ev.AcceptQueueLen, &ev.AcceptQueueMax
		j.SynQueueLen, j.SynQueueMax = &ev.SynQueueLen, &ev.AcceptQueueMax
		j.SkDrops = &ev.SkDrops
	}
	if ev.Kind == tracer.KindAccept && ev.LatencyKnown {
		ns := ev.Latency.Nanoseconds()
		j.LatencyNs = &ns
	}
	return j
}

// EventWriter writes events in one format.
type EventWriter struct {
	w      io.Writer
	format Format
	enc    *json.Encoder
	buf    []byte
}

func NewEventWriter(w io.Writer, f Format) *EventWriter {
	return &EventWriter{w: w, format: f, enc: json.NewEncoder(w)}
}

// Columns of the text format: where each starts. QUEUES is wide enough for
// "acc=4096/4096 syn=4096/4096" (somaxconn's default), so DETAIL lines up
// for every listener that keeps it; a wider value pushes the rest of its own
// line right by what it overflows.
const (
	colEvent    = 16
	colNetns    = 31
	colListener = 42
	colPeer     = 65
	colQueues   = 88
	colDetail   = 116
)

// Header prints the column titles of the text format.
func (ew *EventWriter) Header() error {
	if ew.format != Text {
		return nil
	}
	b := append([]byte(nil), "TIME"...)
	for _, c := range []struct {
		col   int
		title string
	}{{colEvent, "EVENT"}, {colNetns, "NETNS"}, {colListener, "LISTENER"}, {colPeer, "PEER"}, {colQueues, "QUEUES"}, {colDetail, "DETAIL"}} {
		b = pad(b, c.col)
		b = append(b, c.title...)
	}
	b = append(b, '\n')
	_, err := ew.w.Write(b)
	return err
}

// Write prints one event.
func (ew *EventWriter) Write(ev *tracer.Event) error {
	if ew.format == JSON {
		return ew.enc.Encode(NewEventJSON(ev))
	}
	b := ew.buf[:0]
	b = ev.Time.AppendFormat(b, "15:04:05.000000")
	b = pad(b, colEvent)
	b = append(b, ev.Kind.String()...)
	b = pad(b, colNetns)
	b = strconv.AppendUint(b, uint64(ev.Netns), 10)
	b = pad(b, colListener)
	b = append(b, ev.Endpoint.String()...)
	b = pad(b, colPeer)
	if ev.Peer.IsValid() {
		b = append(b, ev.Peer.String()...)
	} else {
		b = append(b, '-')
	}
	b = pad(b, colQueues)
	if ev.QueueKnown {
		b = append(b, "acc="...)
		b = strconv.AppendUint(b, uint64(ev.AcceptQueueLen), 10)
		b = append(b, '/')
		b = strconv.AppendUint(b, uint64(ev.AcceptQueueMax), 10)
		b = append(b, " syn="...)
		b = strconv.AppendUint(b, uint64(ev.SynQueueLen), 10)
		b = append(b, '/')
		b = strconv.AppendUint(b, uint64(ev.AcceptQueueMax), 10)
	} else {
		b = append(b, '-')
	}
	switch {
	case ev.Reason != tracer.ReasonNone:
		b = pad(b, colDetail)
		b = append(b, "reason="...)
		b = append(b, ev.Reason.String()...)
	case ev.Kind == tracer.KindAccept:
		b = pad(b, colDetail)
		b = append(b, "latency="...)
		if ev.LatencyKnown {
			b = append(b, Duration(ev.Latency)...)
		} else {
			b = append(b, "unknown (enqueued before synq started)"...)
		}
		b = append(b, " pid="...)
		b = strconv.AppendUint(b, uint64(ev.PID), 10)
		b = append(b, " comm="...)
		b, _ = ev.Comm.AppendText(b)
	}
	b = append(b, '\n')
	ew.buf = b
	_, err := ew.w.Write(b)
	return err
}

func pad(b []byte, col int) []byte {
	for len(b) < col {
		b = append(b, ' ')
	}
	if b[len(b)-1] != ' ' {
		b = append(b, ' ')
	}
	return b
}

// Duration prints d with 3 significant digits: 1.23ms, 456µs, 2.00s.
func Duration(d time.Duration) string {
	switch {
	case d >= time.Second:
		return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + "s"
	case d >= time.Millisecond:
		return strconv.FormatFloat(float64(d)/1e6, 'f', 2, 64) + "ms"
	case d >= time.Microsecond:
		return strconv.FormatFloat(float64(d)/1e3, 'f', 1, 64) + "µs"
	}
	return strconv.FormatInt(int64(d), 10) + "ns"
}
