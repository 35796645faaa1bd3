package tracer

import (
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// Listener is one listening TCP socket as the kernel holds it.
type Listener struct {
	ID ListenerID
	Endpoint
	AcceptQueueLen uint32 // sk_ack_backlog (ss Recv-Q)
	AcceptQueueMax uint32 // sk_max_ack_backlog (ss Send-Q)
	SynQueueLen    uint32 // request socks (icsk_accept_queue.qlen)
	SynQueueYoung  uint32 // requests that have not had a SYN-ACK timeout yet
	SkDrops        uint32 // sk_drops (ss -m d<N>)
	UID            uint32
	Inode          uint64 // socket inode: /proc/PID/fd/N -> socket:[Inode]
}

const listenerSize = int(unsafe.Sizeof(iterSynqListener{}))

// Snapshotter lists listening sockets with iter/tcp.
type Snapshotter struct {
	coll *ebpf.Collection
	link link.Link
}

// NewSnapshotter loads the iter/tcp program. btfPath overrides the kernel BTF.
func NewSnapshotter(btfPath string) (*Snapshotter, error) {
	if err := checkPrivileges(); err != nil {
		return nil, err
	}
	kspec, cache, err := loadKernelBTF(btfPath)
	if err != nil {
		return nil, err
	}
	spec, err := loadIter()
	if err != nil {
		return nil, err
	}
	// The iterator uses none of the tracing maps.
	for n := range spec.Maps {
		if !strings.HasPrefix(n, ".") {
			delete(spec.Maps, n)
		}
	}
	opts := ebpf.CollectionOptions{Cache: cache}
	opts.Programs.KernelTypes = kspec
	coll, err := ebpf.NewCollectionWithOptions(spec, opts)
	if err != nil {
		return nil, fmt.Errorf("load iter/tcp program: %w", err)
	}
	l, err := link.AttachIter(link.IterOptions{Program: coll.Programs["iter_listeners"]})
	if err != nil {
		coll.Close()
		return nil, fmt.Errorf("attach iter/tcp: %w", err)
	}
	return &Snapshotter{coll: coll, link: l}, nil
}

// Listeners returns the listening sockets of the network namespace of the
// calling OS thread: the kernel binds a TCP iterator to the netns of the task
// that opens it. Callers that want another netns lock the thread and enter it.
func (s *Snapshotter) Listeners() ([]Listener, error) {
	rd, err := s.link.(*link.Iter).Open()
	if err != nil {
		return nil, fmt.Errorf("open tcp iterator: %w", err)
	}
	defer rd.Close()
	buf, err := io.ReadAll(rd)
	if err != nil {
		return nil, fmt.Errorf("read tcp iterator: %w", err)
	}
	return decodeListeners(buf)
}

func decodeListeners(buf []byte) ([]Listener, error) {
	if len(buf)%listenerSize != 0 {
		return nil, fmt.Errorf("tcp iterator returned %d bytes, not a multiple of %d", len(buf), listenerSize)
	}
	le := binary.LittleEndian
	out := make([]Listener, 0, len(buf)/listenerSize)
	for off := 0; off < len(buf); off += listenerSize {
		b := buf[off : off+listenerSize]
		var laddr [16]uint8
		copy(laddr[:], b[48:64])
		family := le.Uint16(b[44:])
		out = append(out, Listener{
			ID:             ListenerID(le.Uint64(b[0:])),
			Inode:          le.Uint64(b[8:]),
			Endpoint:       Endpoint{Netns: le.Uint32(b[16:]), Addr: addr(family, &laddr), Port: le.Uint16(b[46:])},
			AcceptQueueLen: le.Uint32(b[20:]),
			AcceptQueueMax: le.Uint32(b[24:]),
			SynQueueLen:    le.Uint32(b[28:]),
			SynQueueYoung:  le.Uint32(b[32:]),
			SkDrops:        le.Uint32(b[36:]),
			UID:            le.Uint32(b[40:]),
		})
	}
	return out, nil
}

// Close releases the iterator.
func (s *Snapshotter) Close() error {
	s.link.Close()
	s.coll.Close()
	return nil
}

// ListenDrops is the number of connections a listener dropped between two
// snapshots (what the kernel counts as ListenDrops for it), with whether the
// tier makes it exact.
//
// fentry/kprobe tiers see every drop: SYN-side drops plus failed final ACKs.
// The tracepoint tier cannot see SYN-side drops (they are consume_skb'd), so
// it derives them from the listener's sk_drops: every ListenDrops bumps
// sk_drops once, and the only other bumps come from tcp_v{4,6}_rcv's
// discard_and_relse, which the kfree_skb program counts as RcvDrops.
func ListenDrops(info Info, before, after Listener, c Counts) (uint64, bool) {
	if info.Tier != TierTracepoint {
		return c.SynDrops() + c.AckOverflow + c.AckOther, true
	}
	d := uint64(after.SkDrops - before.SkDrops) // wraps like the kernel's counter
	if !info.ExactListenDrops {
		return d, false
	}
	if c.RcvDrops > d {
		return 0, false
	}
	return d - c.RcvDrops, true
}
