// Package render is the one place synq's output is formatted: it turns
// tracer events, listener snapshots, top's frames, latency histograms,
// counters and socket states into the lines operators read (aligned text,
// top's full-screen view) and machines read (JSON lines, whose schemas are
// defined here). One file per command; internal/command feeds them.
package render

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/synq-trace/synq/internal/aggregate"
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
		// The SYN queue's limit is the accept queue's: it is full when
		// qlen > sk_max_ack_backlog.
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

// AppendJSON appends ev as one JSON object, the bytes encoding/json makes of
// NewEventJSON(ev), without reflection or allocations: `synq trace --output
// json` runs it for every event of a connection storm.
func AppendJSON(b []byte, ev *tracer.Event) []byte {
	b = append(b, `{"time_ns":`...)
	b = strconv.AppendInt(b, ev.Time.UnixNano(), 10)
	b = append(b, `,"kind":"`...)
	b = append(b, ev.Kind.String()...)
	b = append(b, '"')
	if r := ev.Reason.String(); r != "" {
		b = append(b, `,"reason":"`...)
		b = append(b, r...)
		b = append(b, '"')
	}
	b = append(b, `,"netns":`...)
	b = strconv.AppendUint(b, uint64(ev.Netns), 10)
	b = append(b, `,"addr":"`...)
	b = appendAddr(b, ev.Addr)
	b = append(b, `","port":`...)
	b = strconv.AppendUint(b, uint64(ev.Port), 10)
	if ev.Peer.IsValid() {
		b = append(b, `,"peer":"`...)
		b = ev.Peer.AppendTo(b)
		b = append(b, '"')
	}
	if ev.QueueKnown {
		b = append(b, `,"accept_queue_len":`...)
		b = strconv.AppendUint(b, uint64(ev.AcceptQueueLen), 10)
		b = append(b, `,"accept_queue_max":`...)
		b = strconv.AppendUint(b, uint64(ev.AcceptQueueMax), 10)
		b = append(b, `,"syn_queue_len":`...)
		b = strconv.AppendUint(b, uint64(ev.SynQueueLen), 10)
		b = append(b, `,"syn_queue_max":`...)
		b = strconv.AppendUint(b, uint64(ev.AcceptQueueMax), 10)
		b = append(b, `,"sk_drops":`...)
		b = strconv.AppendUint(b, uint64(ev.SkDrops), 10)
	}
	if ev.Kind == tracer.KindAccept && ev.LatencyKnown {
		b = append(b, `,"latency_ns":`...)
		b = strconv.AppendInt(b, ev.Latency.Nanoseconds(), 10)
	}
	if ev.PID != 0 {
		b = append(b, `,"pid":`...)
		b = strconv.AppendUint(b, uint64(ev.PID), 10)
	}
	if n := ev.Comm.Len(); n > 0 {
		b = append(b, `,"comm":`...)
		b = appendJSONString(b, ev.Comm[:n])
	}
	return append(b, '}')
}

// appendAddr is ev.Addr.String() without its allocation.
func appendAddr(b []byte, a netip.Addr) []byte {
	if !a.IsValid() {
		return append(b, a.String()...)
	}
	return a.AppendTo(b)
}

// appendAddrPort is a.String() without its allocation.
func appendAddrPort(b []byte, a netip.AddrPort) []byte {
	if !a.Addr().IsValid() {
		return append(b, a.String()...)
	}
	return a.AppendTo(b)
}

// appendJSONString quotes s as encoding/json does: a task name is usually
// plain ASCII, copied as is; anything it would escape (quotes, control
// bytes, HTML characters, invalid UTF-8) goes through encoding/json.
func appendJSONString(b, s []byte) []byte {
	for _, c := range s {
		if c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(string(s))
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// EventWriter writes events in one format.
type EventWriter struct {
	w      io.Writer
	format Format
	buf    []byte
	// Workload, when set, names an event's listener (nil: not known).
	Workload func(tracer.ListenerID) *EventWorkload
}

// EventWorkload is the workload of an event's listener, as the WORKLOAD
// column of listeners and top names it: the identity of the process holding
// the socket (its first owner), else its cgroup.
type EventWorkload struct {
	Text string // the column's text: ns/pod/container, container, unit or cgroup
	json []byte // `,"workload":"<Text>","owner":{...}`
}

// NewEventWorkload names a listener by its first owner; nil when the owner
// says nothing (the root cgroup, no identity). In JSON the owner is the
// object of listeners' and top's "owners".
func NewEventWorkload(o aggregate.Owner) *EventWorkload {
	text := workload(o)
	if text == "" {
		return nil
	}
	o.Accepting = false // the listener's, not this event's
	j, err := json.Marshal(o)
	if err != nil {
		return nil
	}
	b := append([]byte(`,"workload":`), appendJSONString(nil, []byte(text))...)
	b = append(append(b, `,"owner":`...), j...)
	return &EventWorkload{Text: text, json: b}
}

func NewEventWriter(w io.Writer, f Format) *EventWriter {
	return &EventWriter{w: w, format: f}
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
	var wl *EventWorkload
	if ew.Workload != nil && ev.Listener != 0 {
		wl = ew.Workload(ev.Listener)
	}
	if ew.format == JSON {
		b := AppendJSON(ew.buf[:0], ev)
		if wl != nil {
			b = append(append(b[:len(b)-1], wl.json...), '}')
		}
		b = append(b, '\n')
		ew.buf = b
		_, err := ew.w.Write(b)
		return err
	}
	b := ew.buf[:0]
	b = ev.Time.AppendFormat(b, "15:04:05.000000")
	b = pad(b, colEvent)
	b = append(b, ev.Kind.String()...)
	b = pad(b, colNetns)
	b = strconv.AppendUint(b, uint64(ev.Netns), 10)
	b = pad(b, colListener)
	b = appendAddrPort(b, netip.AddrPortFrom(ev.Addr, ev.Port))
	b = pad(b, colPeer)
	if ev.Peer.IsValid() {
		b = ev.Peer.AppendTo(b)
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
	if wl != nil {
		b = pad(b, colDetail)
		b = append(b, "workload="...)
		b = append(b, wl.Text...)
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
