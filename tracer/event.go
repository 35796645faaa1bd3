package tracer

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"time"
	"unsafe"
)

// Kind is what happened to a connection on its way through a listener.
type Kind uint8

// Kinds, in the order a connection meets them. Values match enum synq_kind
// in bpf/synq.h.
const (
	KindSyn           Kind = Kind(tpSynqKindSYNQ_KIND_SYN)
	KindSynDrop       Kind = Kind(tpSynqKindSYNQ_KIND_SYN_DROP)
	KindCookie        Kind = Kind(tpSynqKindSYNQ_KIND_COOKIE)
	KindSynackRetrans Kind = Kind(tpSynqKindSYNQ_KIND_SYNACK_RETRANS)
	KindEnqueue       Kind = Kind(tpSynqKindSYNQ_KIND_ENQUEUE)
	KindAckOverflow   Kind = Kind(tpSynqKindSYNQ_KIND_ACK_OVERFLOW)
	KindAccept        Kind = Kind(tpSynqKindSYNQ_KIND_ACCEPT)
)

var kindNames = map[Kind]string{
	KindSyn:           "syn",
	KindSynDrop:       "syn-drop",
	KindCookie:        "cookie",
	KindSynackRetrans: "synack-retrans",
	KindEnqueue:       "enqueue",
	KindAckOverflow:   "ack-overflow",
	KindAccept:        "accept",
}

// AllKinds lists every kind in the order of the listen path.
var AllKinds = []Kind{KindSyn, KindSynDrop, KindCookie, KindSynackRetrans, KindEnqueue, KindAckOverflow, KindAccept}

func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// ParseKind is the inverse of Kind.String.
func ParseKind(s string) (Kind, error) {
	for k, n := range kindNames {
		if n == s {
			return k, nil
		}
	}
	names := make([]string, 0, len(AllKinds))
	for _, k := range AllKinds {
		names = append(names, k.String())
	}
	return 0, fmt.Errorf("unknown event kind %q (want one of %s)", s, strings.Join(names, ", "))
}

// Reason says why a SYN was dropped.
type Reason uint8

// Values match enum synq_reason in bpf/synq.h.
const (
	ReasonNone            Reason = Reason(tpSynqReasonSYNQ_REASON_NONE)
	ReasonSynQueueFull    Reason = Reason(tpSynqReasonSYNQ_REASON_SYN_QUEUE_FULL)
	ReasonAcceptQueueFull Reason = Reason(tpSynqReasonSYNQ_REASON_ACCEPT_QUEUE_FULL)
	ReasonOther           Reason = Reason(tpSynqReasonSYNQ_REASON_OTHER)
)

func (r Reason) String() string {
	switch r {
	case ReasonNone:
		return ""
	case ReasonSynQueueFull:
		return "syn-queue-full"
	case ReasonAcceptQueueFull:
		return "accept-queue-full"
	case ReasonOther:
		return "other"
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// ListenerID is a listening socket's kernel identity: stable while the socket
// lives, reused after it is freed. It is never shown to users.
type ListenerID uint64

// Endpoint identifies a listener to an operator.
type Endpoint struct {
	Netns uint32 // inode of the network namespace
	Addr  netip.Addr
	Port  uint16
}

func (e Endpoint) String() string {
	return netip.AddrPortFrom(e.Addr, e.Port).String()
}

// Event is one thing that happened in a listener's queues.
type Event struct {
	Time     time.Time
	Kind     Kind
	Reason   Reason
	Listener ListenerID // 0 when the hook cannot see the listener
	Endpoint
	Peer netip.AddrPort // remote end, when the hook sees it

	// Queue depths when the event happened; QueueKnown is false when the hook
	// cannot see the listener (enqueue on kernels without sk_data_ready).
	QueueKnown     bool
	AcceptQueueLen uint32
	AcceptQueueMax uint32
	SynQueueLen    uint32
	SkDrops        uint32

	// accept only: time the child waited in the accept queue, and who took it.
	Latency      time.Duration
	LatencyKnown bool
	PID          uint32
	Comm         Comm
}

// Comm is a task's command name as the kernel keeps it (task->comm,
// TASK_COMM_LEN): up to 16 bytes, NUL-padded. A fixed-size array keeps
// Decode free of allocations on the reader's hot path; String converts.
type Comm [16]byte

// MakeComm is the Comm of name, cut to 16 bytes.
func MakeComm(name string) (c Comm) {
	copy(c[:], name)
	return c
}

// Len is the length of the name, up to its first NUL.
func (c Comm) Len() int {
	for i, b := range c {
		if b == 0 {
			return i
		}
	}
	return len(c)
}

// String is the name (allocates; see AppendText).
func (c Comm) String() string { return string(c[:c.Len()]) }

// AppendText appends the name to b (encoding.TextAppender).
func (c Comm) AppendText(b []byte) ([]byte, error) { return append(b, c[:c.Len()]...), nil }

// MarshalText makes JSON encode a Comm as a string.
func (c Comm) MarshalText() ([]byte, error) { return c.AppendText(nil) }

// RecordSize is the size of one ring-buffer record.
const RecordSize = int(unsafe.Sizeof(tpSynqEvent{}))

const (
	flagNoQueue   = 1
	flagNoLatency = 2
	afInet6       = 10
)

// Decode parses one ring-buffer record into ev. bootOffset converts the
// kernel's CLOCK_MONOTONIC timestamps to wall time. It does not allocate.
func Decode(b []byte, bootOffset time.Duration, ev *Event) error {
	if len(b) < RecordSize {
		return fmt.Errorf("record of %d bytes, want %d", len(b), RecordSize)
	}
	le := binary.LittleEndian
	var raw tpSynqEvent
	raw.TimeNs = le.Uint64(b[0:])
	raw.Listener = le.Uint64(b[8:])
	raw.LatencyNs = le.Uint64(b[16:])
	raw.Netns = le.Uint32(b[24:])
	raw.AccLen = le.Uint32(b[28:])
	raw.AccMax = le.Uint32(b[32:])
	raw.SynLen = le.Uint32(b[36:])
	raw.SkDrops = le.Uint32(b[40:])
	raw.Pid = le.Uint32(b[44:])
	raw.Family = le.Uint16(b[48:])
	raw.Lport = le.Uint16(b[50:])
	raw.Rport = le.Uint16(b[52:])
	raw.Kind = b[54]
	raw.Reason = b[55]
	copy(raw.Laddr[:], b[56:72])
	copy(raw.Raddr[:], b[72:88])
	raw.Flags = le.Uint32(b[88:])

	k := Kind(raw.Kind)
	if _, ok := kindNames[k]; !ok {
		return fmt.Errorf("record of unknown kind %d", raw.Kind)
	}
	if raw.Reason > uint8(ReasonOther) {
		return fmt.Errorf("record with unknown reason %d", raw.Reason)
	}
	if raw.Family != 2 && raw.Family != afInet6 {
		return fmt.Errorf("record with address family %d", raw.Family)
	}
	*ev = Event{
		Time:           time.Unix(0, int64(raw.TimeNs)).Add(bootOffset),
		Kind:           k,
		Reason:         Reason(raw.Reason),
		Listener:       ListenerID(raw.Listener),
		Endpoint:       Endpoint{Netns: raw.Netns, Addr: addr(raw.Family, &raw.Laddr), Port: raw.Lport},
		QueueKnown:     raw.Flags&flagNoQueue == 0,
		AcceptQueueLen: raw.AccLen,
		AcceptQueueMax: raw.AccMax,
		SynQueueLen:    raw.SynLen,
		SkDrops:        raw.SkDrops,
		PID:            raw.Pid,
	}
	if raw.Rport != 0 {
		ev.Peer = netip.AddrPortFrom(addr(raw.Family, &raw.Raddr), raw.Rport)
	}
	if k == KindAccept {
		ev.LatencyKnown = raw.Flags&flagNoLatency == 0
		ev.Latency = time.Duration(raw.LatencyNs)
		ev.Comm = Comm(b[92:108])
		// Bytes after the NUL are not part of the name: zero them so equal
		// names are equal Comms.
		clear(ev.Comm[ev.Comm.Len():])
	}
	return nil
}

func addr(family uint16, b *[16]uint8) netip.Addr {
	if family == afInet6 {
		a := netip.AddrFrom16(*b)
		return a
	}
	return netip.AddrFrom4([4]byte{b[0], b[1], b[2], b[3]})
}
