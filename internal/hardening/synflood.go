// Package hardening drives the listen path into the situations synq must
// survive: SYN floods whose requests never complete, for the hardening tests
// of issue #8.
package hardening

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"

	"github.com/synq-trace/synq/internal/netlab"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// routeHandle opens a route netlink handle in the namespace and gives the
// IPv4 prefix as a destination for a route.
func routeHandle(ns *netlab.Netns, prefix netip.Prefix) (*netlink.Handle, *net.IPNet, error) {
	if !prefix.Addr().Is4() {
		return nil, nil, fmt.Errorf("blackhole %s: IPv4 only", prefix)
	}
	h, err := netlink.NewHandleAt(netns.NsHandle(ns.FD()), unix.NETLINK_ROUTE)
	if err != nil {
		return nil, nil, fmt.Errorf("netlink in %s: %w", ns, err)
	}
	p := prefix.Masked()
	return h, &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}, nil
}

// Blackhole routes prefix out of the namespace's loopback device, so a
// SYN-ACK to an address in it is routed (the listener keeps the request, as
// it would for a real remote peer) and then vanishes: it loops back, reaches
// tcp_v4_rcv (Tcp.InSegs counts it), finds no socket and is freed without an
// RST, because tcp_v4_send_reset answers only packets whose route is
// RTN_LOCAL. A blackhole or unreachable route would not do: tcp_conn_request
// drops the SYN itself (and counts ListenDrops) when the SYN-ACK has no route.
func Blackhole(ns *netlab.Netns, prefix netip.Prefix) error {
	h, dst, err := routeHandle(ns, prefix)
	if err != nil {
		return err
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("lo in %s: %w", ns, err)
	}
	if err := h.RouteAdd(&netlink.Route{LinkIndex: lo.Attrs().Index, Dst: dst, Scope: netlink.SCOPE_LINK}); err != nil {
		return fmt.Errorf("route %s dev lo in %s: %w", prefix.Masked(), ns, err)
	}
	return nil
}

// Unroutable adds a blackhole route for prefix in the namespace: a SYN from
// an address in it finds no route for its SYN-ACK, and tcp_conn_request
// drops it (ListenDrops, with neither ListenOverflows nor TCPReqQFullDrop:
// a drop that is not a full queue).
func Unroutable(ns *netlab.Netns, prefix netip.Prefix) error {
	h, dst, err := routeHandle(ns, prefix)
	if err != nil {
		return err
	}
	defer h.Close()
	if err := h.RouteAdd(&netlink.Route{Dst: dst, Type: unix.RTN_BLACKHOLE}); err != nil {
		return fmt.Errorf("blackhole route %s in %s: %w", prefix.Masked(), ns, err)
	}
	return nil
}

// Flooder sends TCP SYNs with spoofed source addresses from a raw socket.
type Flooder struct {
	fd  int
	src netip.Prefix
	rnd *rand.Rand
	pkt [44]byte
}

// NewFlooder opens a raw IPv4 socket (IPPROTO_RAW: the caller writes the IP
// header) in ns. Sources are drawn from src, which should be routed with
// Blackhole so that no SYN-ACK is ever answered, by an ACK or an RST.
func NewFlooder(ns *netlab.Netns, src netip.Prefix, seed uint64) (*Flooder, error) {
	if !src.Addr().Is4() || src.Bits() > 30 {
		return nil, fmt.Errorf("flood source %s: want an IPv4 prefix of /30 or wider", src)
	}
	fd, err := ns.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return nil, err
	}
	return &Flooder{fd: fd, src: src.Masked(), rnd: rand.New(rand.NewPCG(seed, 0x5157))}, nil
}

// Close closes the raw socket.
func (f *Flooder) Close() error { return unix.Close(f.fd) }

// Send sends n SYNs to dst, each from a random address of the source prefix
// and a random port, and returns how many the kernel took.
func (f *Flooder) Send(dst netip.AddrPort, n int) (int, error) {
	if !dst.Addr().Is4() {
		return 0, fmt.Errorf("flood %s: IPv4 only", dst)
	}
	sa := &unix.SockaddrInet4{Addr: dst.Addr().As4()}
	hostBits := 32 - f.src.Bits()
	base := binary.BigEndian.Uint32(f.src.Addr().AsSlice())
	for i := range n {
		// Skip the network and broadcast addresses of the prefix.
		host := 1 + f.rnd.Uint32N(uint32(1)<<hostBits-2)
		sport := uint16(1024 + f.rnd.UintN(64511))
		BuildSYN(f.pkt[:], netip.AddrFrom4(be4(base|host)), sport, dst, f.rnd.Uint32())
		if err := unix.Sendto(f.fd, f.pkt[:], 0, sa); err != nil {
			return i, fmt.Errorf("send SYN %d to %s: %w", i, dst, err)
		}
	}
	return n, nil
}

func be4(v uint32) [4]byte {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return b
}

// BuildSYN writes an IPv4 header and a TCP SYN with an MSS option (44
// bytes) into b. The kernel fills in the IP ID, total length and header
// checksum of an IPPROTO_RAW packet; the TCP checksum is ours.
func BuildSYN(b []byte, src netip.Addr, sport uint16, dst netip.AddrPort, seq uint32) {
	_ = b[43]
	be := binary.BigEndian
	ip, tcp := b[:20], b[20:44]
	clear(b[:44])
	ip[0] = 0x45 // version 4, 5 words
	be.PutUint16(ip[2:], 44)
	be.PutUint16(ip[6:], 0x4000) // DF
	ip[8] = 64
	ip[9] = unix.IPPROTO_TCP
	s4, d4 := src.As4(), dst.Addr().As4()
	copy(ip[12:], s4[:])
	copy(ip[16:], d4[:])
	be.PutUint16(ip[10:], Checksum(0, ip))

	be.PutUint16(tcp[0:], sport)
	be.PutUint16(tcp[2:], dst.Port())
	be.PutUint32(tcp[4:], seq)
	tcp[12] = 6 << 4 // 6 words: header + MSS option
	tcp[13] = 0x02   // SYN
	be.PutUint16(tcp[14:], 65535)
	copy(tcp[20:], []byte{2, 4, 0x05, 0xb4}) // MSS 1460
	var pseudo [12]byte
	copy(pseudo[0:], s4[:])
	copy(pseudo[4:], d4[:])
	pseudo[9] = unix.IPPROTO_TCP
	be.PutUint16(pseudo[10:], uint16(len(tcp)))
	be.PutUint16(tcp[16:], Checksum(sum(0, pseudo[:]), tcp))
}

func sum(acc uint32, b []byte) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		acc += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		acc += uint32(b[len(b)-1]) << 8
	}
	return acc
}

// Checksum is the Internet checksum (RFC 1071) of b, continuing a partial
// one's-complement sum acc.
func Checksum(acc uint32, b []byte) uint16 {
	acc = sum(acc, b)
	for acc>>16 != 0 {
		acc = acc&0xffff + acc>>16
	}
	return ^uint16(acc)
}
