package netlab

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// SockOpt adjusts a socket before bind(2) (Listen) or connect(2) (DialMany).
type SockOpt func(fd int) error

// ReusePort sets SO_REUSEPORT, so several listeners can share one port (the
// kernel then spreads SYNs over their separate queues).
func ReusePort() SockOpt {
	return SockoptInt(unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
}

// DelayHandshakeACK makes a client hold back the last ACK of the handshake
// for up to 200ms (TCP_DELACK_MAX) instead of sending it at once, by setting
// TCP_QUICKACK to 0 before connect: tcp_rcv_synsent_state_process() then
// schedules a delayed ACK because the socket is in "pingpong" mode.
//
// On loopback the whole handshake otherwise runs inside connect(2), so the
// listener sees the SYN and the ACK with the same queue length. With the
// ACK delayed, a burst of SYNs is admitted while the accept queue is still
// short and the ACKs then find it full: the listener drops them
// (ListenOverflows at ACK time), keeps the request sockets and retransmits
// their SYN-ACKs, while the clients already consider themselves connected.
func DelayHandshakeACK() SockOpt {
	return SockoptInt(unix.IPPROTO_TCP, unix.TCP_QUICKACK, 0)
}

// SockoptInt sets any integer socket option, e.g.
// SockoptInt(unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT, 1).
func SockoptInt(level, opt, value int) SockOpt {
	return func(fd int) error {
		if err := unix.SetsockoptInt(fd, level, opt, value); err != nil {
			return fmt.Errorf("setsockopt(%d, %d, %d): %w", level, opt, value, err)
		}
		return nil
	}
}

// Listener is a TCP listening socket inside a Netns whose backlog is exactly
// what was asked for. net.Listen cannot do that: it always passes
// net.core.somaxconn (read once per process, from the host namespace).
//
// The kernel calls the accept queue full when its length is *greater* than
// the backlog, so backlog N holds N+1 connections, and briefly more while
// ACKs are processed on several CPUs.
type Listener struct {
	ln   *net.TCPListener
	raw  interface{ Control(func(uintptr)) error }
	fd   int
	addr netip.AddrPort
}

// Listen creates, binds and listens on a TCP socket in the namespace.
// network is "tcp4", "tcp6" or "tcp" (family from the address); addr is a
// literal "127.0.0.1:0" or "[::1]:0". SO_REUSEADDR is always set, as Go and
// most servers do, so a fixed port can be reused right after a previous run.
func (n *Netns) Listen(network, addr string, backlog int, opts ...SockOpt) (*Listener, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, fmt.Errorf("listen address %q: want a literal ip:port: %w", addr, err)
	}
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	family, err := family(network, ap.Addr())
	if err != nil {
		return nil, err
	}

	fd, err := n.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		if errors.Is(err, unix.EAFNOSUPPORT) {
			return nil, fmt.Errorf("%s not supported by this kernel: %w", network, err)
		}
		return nil, err
	}
	fail := func(what string, err error) (*Listener, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("%s %s %s in %s: %w", what, network, addr, n, err)
	}

	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fail("SO_REUSEADDR", err)
	}
	if family == unix.AF_INET6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
			return fail("IPV6_V6ONLY", err)
		}
	}
	for _, o := range opts {
		if err := o(fd); err != nil {
			return fail("option for", err)
		}
	}
	if err := unix.Bind(fd, sockaddr(ap)); err != nil {
		return fail("bind", err)
	}
	if err := unix.Listen(fd, backlog); err != nil {
		return fail("listen", err)
	}

	// Hand the socket to Go's poller so Accept blocks no thread and
	// deadlines work. FileListener dups the fd: same socket, same queue.
	f := os.NewFile(uintptr(fd), "netlab-listener")
	nl, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("wrap listener %s: %w", addr, err)
	}
	l := &Listener{ln: nl.(*net.TCPListener)}
	raw, err := l.ln.SyscallConn()
	if err != nil {
		nl.Close()
		return nil, err
	}
	l.raw = raw
	_ = raw.Control(func(s uintptr) { l.fd = int(s) })
	sa, err := unix.Getsockname(l.fd)
	if err != nil {
		nl.Close()
		return nil, fmt.Errorf("getsockname: %w", err)
	}
	l.addr = addrPort(sa)
	return l, nil
}

func family(network string, a netip.Addr) (int, error) {
	switch network {
	case "tcp4":
		if !a.Is4() {
			return 0, fmt.Errorf("network tcp4 with non-IPv4 address %s", a)
		}
		return unix.AF_INET, nil
	case "tcp6":
		if !a.Is6() {
			return 0, fmt.Errorf("network tcp6 with non-IPv6 address %s", a)
		}
		return unix.AF_INET6, nil
	case "tcp":
		if a.Is4() {
			return unix.AF_INET, nil
		}
		return unix.AF_INET6, nil
	}
	return 0, fmt.Errorf("unsupported network %q (want tcp4, tcp6 or tcp)", network)
}

func sockaddr(ap netip.AddrPort) unix.Sockaddr {
	if ap.Addr().Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
}

func addrPort(sa unix.Sockaddr) netip.AddrPort {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port))
	}
	return netip.AddrPort{}
}

// Addr is the bound address, with the real port when 0 was asked for.
func (l *Listener) Addr() netip.AddrPort { return l.addr }

// Port is the bound port.
func (l *Listener) Port() uint16 { return l.addr.Port() }

// String is the "ip:port" to dial.
func (l *Listener) String() string { return l.addr.String() }

// FD is the listening socket's descriptor, valid until Close, for
// getsockopt and the like. It is non-blocking and owned by the Go poller:
// do not close it or make it blocking.
func (l *Listener) FD() int { return l.fd }

// TCPListener is the Go listener over the same socket, for SetDeadline or
// to pass to an http.Server.
func (l *Listener) TCPListener() *net.TCPListener { return l.ln }

// Accept waits for and returns the next connection.
func (l *Listener) Accept() (net.Conn, error) { return l.ln.Accept() }

// Queue returns the accept queue's current length and its limit (the
// effective backlog), from TCP_INFO: for a listener the kernel reports
// sk_ack_backlog in tcpi_unacked and sk_max_ack_backlog in tcpi_sacked.
func (l *Listener) Queue() (length, limit uint32, err error) {
	var info *unix.TCPInfo
	cerr := l.raw.Control(func(fd uintptr) {
		info, err = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	})
	if cerr != nil {
		return 0, 0, cerr
	}
	if err != nil {
		return 0, 0, fmt.Errorf("TCP_INFO on listener %s: %w", l.addr, err)
	}
	return info.Unacked, info.Sacked, nil
}

// WaitQueue polls until the accept queue holds at least n connections.
func (l *Listener) WaitQueue(n uint32, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		q, _, err := l.Queue()
		if err != nil {
			return err
		}
		if q >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("accept queue of %s has %d connections after %v, want %d", l.addr, q, timeout, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Close closes the socket; connections still in its queues are reset.
func (l *Listener) Close() error { return l.ln.Close() }
