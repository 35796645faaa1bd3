// Package sockstate counts a network namespace's TCP sockets by state and
// local port, IPv4 and IPv6, with the sock_diag netlink dump ss(8) uses.
//
// It speaks inet_diag itself rather than through vishvananda/netlink,
// whose SocketDiagTCP decodes every socket into heap objects (counting
// 100k sockets needs nothing per socket) and cannot ask for
// INET_DIAG_MEMINFO, which Count needs to tell request sockets from full
// SYN_RECV ones. Its states mask 0xfff lacks bit 12 (NEW_SYN_RECV), but
// that is no loss: the kernel adds NEW_SYN_RECV whenever SYN_RECV is asked
// for (inet_diag_dump_icsk). /proc/net/tcp is not used: it is slower, and
// formatted text for every socket.
package sockstate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/synq-trace/synq/internal/netns"
)

// State is a TCP state as numbered in include/net/tcp_states.h.
type State uint8

// The TCP states.
const (
	Established State = 1 + iota
	SynSent
	SynRecv
	FinWait1
	FinWait2
	TimeWait
	Close
	CloseWait
	LastAck
	Listen
	Closing
	// NewSynRecv is a request socket: a SYN answered with a SYN-ACK,
	// waiting in the listener's SYN queue for the final ACK (Linux 4.4+).
	NewSynRecv
)

// NumStates sizes arrays indexed by State; index 0 collects states this
// package does not know.
const NumStates = 13

// States lists the states in tcp_states.h order.
var States = []State{Established, SynSent, SynRecv, FinWait1, FinWait2, TimeWait, Close, CloseWait, LastAck, Listen, Closing, NewSynRecv}

var stateNames = [NumStates]string{"UNKNOWN", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2",
	"TIME_WAIT", "CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING", "NEW_SYN_RECV"}

func (s State) String() string {
	if int(s) < NumStates {
		return stateNames[s]
	}
	return fmt.Sprintf("STATE_%d", uint8(s))
}

// ParseState accepts the names String gives, case-insensitively, and ss's
// spellings (ESTAB, SYN-RECV, TIME-WAIT, ...).
func ParseState(v string) (State, error) {
	n := strings.ToUpper(strings.ReplaceAll(v, "-", "_"))
	if n == "ESTAB" {
		return Established, nil
	}
	for _, s := range States {
		if stateNames[s] == n || strings.ReplaceAll(stateNames[s], "_", "") == n {
			return s, nil
		}
	}
	return 0, fmt.Errorf("unknown TCP state %q", v)
}

// PortState keys the per-port breakdown.
type PortState struct {
	Port  uint16
	State State
}

// Counts are the TCP sockets of one namespace at one moment.
type Counts struct {
	Total int
	IPv4  int
	IPv6  int // AF_INET6 sockets, IPv4-mapped ones included
	// States is indexed by State.
	States [NumStates]int
	// Ports counts sockets by local port and state. Client sockets sit on
	// ephemeral ports, so this can have tens of thousands of entries.
	Ports map[PortState]int
}

// State returns the number of sockets in s.
func (c *Counts) State(s State) int {
	if int(s) >= NumStates {
		return 0
	}
	return c.States[s]
}

// PortCount is one row of the per-port breakdown.
type PortCount struct {
	Port  uint16
	State State
	Count int
}

// ByPort lists the per-port breakdown, most sockets first, then by port
// and state.
func (c *Counts) ByPort() []PortCount {
	out := make([]PortCount, 0, len(c.Ports))
	for k, n := range c.Ports {
		out = append(out, PortCount{k.Port, k.State, n})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		if a.Port != b.Port {
			return a.Port < b.Port
		}
		return a.State < b.State
	})
	return out
}

// inet_diag protocol constants (include/uapi/linux/inet_diag.h); x/sys/unix
// has SOCK_DIAG_BY_FAMILY but not these.
const (
	sizeofNlmsghdr      = 16
	sizeofInetDiagReqV2 = 56 // family, protocol, ext, pad, states u32, inet_diag_sockid (48)
	sizeofInetDiagMsg   = 72 // family, state, timer, retrans, sockid (48), expires, rqueue, wqueue, uid, inode
	inetDiagMeminfo     = 1
	nlaTypeMask         = ^uint16(unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
	// allStates asks for every state, NEW_SYN_RECV (bit 12) included.
	allStates = 1<<(NumStates) - 1
	// recvBuf fits the largest dump skb: netlink_recvmsg caps the
	// kernel's allocation at 32 KiB minus overhead.
	recvBuf = 64 << 10
)

// Count dumps the TCP sockets of ns, IPv4 then IPv6, and counts them.
//
// The dump is not a snapshot: sockets that change state during it may be
// missed or counted twice, as with ss.
//
// Request sockets are reported by the kernel with state SYN_RECV
// (inet_req_diag_fill / tcp_req_diag_fill), like full sockets in SYN_RECV
// (TCP Fast Open children). Count tells them apart by asking for
// INET_DIAG_MEMINFO, which only full sockets carry, and counts request
// sockets as NEW_SYN_RECV, their real state.
func Count(ns netns.NS) (*Counts, error) {
	return CountIn(ns.Do, ns)
}

// CountIn is Count in the namespace that do runs its function in (ns names
// it in errors): a held namespace (ledger.Namespace.Do), for one.
func CountIn(do func(func() error) error, ns fmt.Stringer) (*Counts, error) {
	var fd int
	err := do(func() error {
		var err error
		// The socket belongs to the namespace it was created in, for good;
		// the dump can run after Do returns.
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sock_diag socket in netns %s: %w", ns, err)
	}
	defer unix.Close(fd)
	// A dump always ends with NLMSG_DONE; the timeout only guards against
	// a kernel that never answers.
	tv := unix.NsecToTimeval(int64(10 * time.Second))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return nil, fmt.Errorf("sock_diag: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("sock_diag bind: %w", err)
	}
	c := &Counts{Ports: make(map[PortState]int, 64)}
	buf := make([]byte, recvBuf)
	for i, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
		if err := dump(fd, fam, uint32(i+1), buf, c); err != nil {
			return nil, fmt.Errorf("TCP sockets of netns %s: %w", ns, err)
		}
	}
	return c, nil
}

func dump(fd int, family uint8, seq uint32, buf []byte, c *Counts) error {
	var req [sizeofNlmsghdr + sizeofInetDiagReqV2]byte
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(req[8:], seq)
	r := req[sizeofNlmsghdr:]
	r[0] = family
	r[1] = unix.IPPROTO_TCP
	r[2] = 1 << (inetDiagMeminfo - 1)
	ne.PutUint32(r[4:], allStates)
	if err := unix.Sendto(fd, req[:], 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("sock_diag request: %w", err)
	}
	for {
		n, _, flags, _, err := unix.Recvmsg(fd, buf, nil, 0)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return fmt.Errorf("sock_diag receive: %w", err)
		}
		if flags&unix.MSG_TRUNC != 0 {
			return errors.New("sock_diag receive: message truncated")
		}
		done, err := parse(buf[:n], seq, c)
		if err != nil || done {
			return err
		}
	}
}

// parse counts the inet_diag messages in one datagram. It reports done at
// NLMSG_DONE.
func parse(b []byte, seq uint32, c *Counts) (bool, error) {
	ne := binary.NativeEndian
	for len(b) >= sizeofNlmsghdr {
		l := int(ne.Uint32(b[0:]))
		typ := ne.Uint16(b[4:])
		mseq := ne.Uint32(b[8:])
		if l < sizeofNlmsghdr || l > len(b) {
			return false, fmt.Errorf("sock_diag: malformed message (length %d of %d)", l, len(b))
		}
		msg := b[sizeofNlmsghdr:l]
		if next := (l + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1); next < len(b) {
			b = b[next:]
		} else {
			b = nil
		}
		if mseq != seq {
			continue // left over from an earlier dump on this socket
		}
		switch typ {
		case unix.NLMSG_DONE:
			if len(msg) >= 4 {
				if e := int32(ne.Uint32(msg)); e < 0 {
					return true, fmt.Errorf("sock_diag dump: %w", unix.Errno(-e))
				}
			}
			return true, nil
		case unix.NLMSG_ERROR:
			if len(msg) < 4 {
				return false, errors.New("sock_diag: short error message")
			}
			e := int32(ne.Uint32(msg))
			if e == 0 {
				continue // an ACK
			}
			err := unix.Errno(-e)
			if err == unix.ENOENT {
				return false, fmt.Errorf("sock_diag: no TCP diag support in this kernel (module tcp_diag): %w", err)
			}
			return false, fmt.Errorf("sock_diag: %w", err)
		case unix.SOCK_DIAG_BY_FAMILY:
			if len(msg) < sizeofInetDiagMsg {
				return false, fmt.Errorf("sock_diag: short inet_diag_msg (%d bytes)", len(msg))
			}
			add(msg, c)
		}
	}
	return false, nil
}

// add counts one inet_diag_msg.
func add(m []byte, c *Counts) {
	st := State(m[1])
	if st == SynRecv && !hasAttr(m[sizeofInetDiagMsg:], inetDiagMeminfo) {
		st = NewSynRecv
	}
	if int(st) >= NumStates {
		st = 0
	}
	c.Total++
	if m[0] == unix.AF_INET6 {
		c.IPv6++
	} else {
		c.IPv4++
	}
	c.States[st]++
	c.Ports[PortState{binary.BigEndian.Uint16(m[4:6]), st}]++
}

func hasAttr(b []byte, typ uint16) bool {
	ne := binary.NativeEndian
	for len(b) >= 4 {
		l := int(ne.Uint16(b[0:]))
		if l < 4 || l > len(b) {
			return false
		}
		if ne.Uint16(b[2:])&nlaTypeMask == typ {
			return true
		}
		next := (l + unix.NLA_ALIGNTO - 1) &^ (unix.NLA_ALIGNTO - 1)
		if next >= len(b) {
			return false
		}
		b = b[next:]
	}
	return false
}
