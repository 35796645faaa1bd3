package tracer

import (
	"testing"
	"unsafe"
)

// The decoders read records by offset; the offsets must be those of the
// bpf2go structs generated from bpf/synq.h.
func TestRecordLayout(t *testing.T) {
	var e tpSynqEvent
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"time_ns", unsafe.Offsetof(e.TimeNs), 0},
		{"listener", unsafe.Offsetof(e.Listener), 8},
		{"latency_ns", unsafe.Offsetof(e.LatencyNs), 16},
		{"netns", unsafe.Offsetof(e.Netns), 24},
		{"sk_drops", unsafe.Offsetof(e.SkDrops), 40},
		{"family", unsafe.Offsetof(e.Family), 48},
		{"kind", unsafe.Offsetof(e.Kind), 54},
		{"laddr", unsafe.Offsetof(e.Laddr), 56},
		{"raddr", unsafe.Offsetof(e.Raddr), 72},
		{"flags", unsafe.Offsetof(e.Flags), 88},
		{"comm", unsafe.Offsetof(e.Comm), 92},
		{"size", unsafe.Sizeof(e), uintptr(RecordSize)},
	} {
		if c.got != c.want {
			t.Errorf("synq_event.%s at %d, decoder reads %d", c.name, c.got, c.want)
		}
	}
	var l iterSynqListener
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"ino", unsafe.Offsetof(l.Ino), 8},
		{"netns", unsafe.Offsetof(l.Netns), 16},
		{"sk_drops", unsafe.Offsetof(l.SkDrops), 36},
		{"uid", unsafe.Offsetof(l.Uid), 40},
		{"family", unsafe.Offsetof(l.Family), 44},
		{"lport", unsafe.Offsetof(l.Lport), 46},
		{"laddr", unsafe.Offsetof(l.Laddr), 48},
		{"size", unsafe.Sizeof(l), uintptr(listenerSize)},
	} {
		if c.got != c.want {
			t.Errorf("synq_listener.%s at %d, decoder reads %d", c.name, c.got, c.want)
		}
	}
}
