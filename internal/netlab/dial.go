package netlab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// DialConn is one client socket of a DialMany.
type DialConn struct {
	// Local is the client's address, known once connect(2) picked the
	// ephemeral port (even while the SYN is still unanswered).
	Local netip.AddrPort
	// Err is nil for an established connection, ErrPending for one still
	// in SYN_SENT at the deadline, else why connect failed.
	Err error

	file *os.File
}

// ErrPending marks a connection whose handshake did not finish before the
// DialMany timeout. Its socket stays open and keeps retransmitting SYNs
// (after 1 s, 3 s, 7 s, ...) until DialResult.Close.
var ErrPending = errors.New("netlab: connect still in progress at deadline")

// DialResult holds the sockets of a DialMany open until Close, so that the
// connections keep occupying the server's queues.
type DialResult struct {
	Established int // handshake completed from the client's view
	Pending     int // still SYN_SENT at the deadline (SYN dropped by the listener)
	Failed      int // refused, reset, timed out by the kernel, ...
	Conns       []*DialConn
}

// Close closes every socket abortively (SO_LINGER 0: RST, no TIME_WAIT), so
// repeated bursts do not use up ephemeral ports.
func (r *DialResult) Close() error {
	var errs []error
	for _, c := range r.Conns {
		if c.file == nil {
			continue
		}
		if rc, err := c.file.SyscallConn(); err == nil {
			_ = rc.Control(func(fd uintptr) {
				_ = unix.SetsockoptLinger(int(fd), unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
			})
		}
		if err := c.file.Close(); err != nil {
			errs = append(errs, err)
		}
		c.file = nil
	}
	return errors.Join(errs...)
}

// SynRetrans is how many SYNs the clients have retransmitted so far, from
// each socket's TCP_INFO total_retrans: they send no data, so each of their
// retransmits is a SYN. The namespace's TcpExt.TCPSynRetrans counts these and
// the listener's SYN-ACK retransmits together (tcp_retransmit_skb and
// tcp_rtx_synack). A connection still pending may retransmit again later.
func (r *DialResult) SynRetrans() (uint64, error) {
	var n uint64
	for _, c := range r.Conns {
		if c.file == nil {
			continue
		}
		rc, err := c.file.SyscallConn()
		if err != nil {
			return 0, err
		}
		var info *unix.TCPInfo
		var serr error
		if err := rc.Control(func(fd uintptr) { info, serr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) }); err != nil {
			return 0, err
		}
		if serr != nil {
			return 0, fmt.Errorf("TCP_INFO of %s: %w", c.Local, serr)
		}
		n += uint64(info.Total_retrans)
	}
	return n, nil
}

// DialMany starts n non-blocking connects to addr (a literal "ip:port") from
// inside the namespace, all at once, and waits up to timeout (or ctx) for
// them to finish.
//
// "Established" is the client's view: on loopback the client completes its
// handshake when the SYN-ACK arrives, even if the listener then drops the
// final ACK because its accept queue is full (the server keeps a request
// socket and retransmits the SYN-ACK).
//
// opts apply to each socket before connect, e.g. DelayHandshakeACK.
func (n *Netns) DialMany(ctx context.Context, addr string, count int, timeout time.Duration, opts ...SockOpt) (*DialResult, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, fmt.Errorf("dial address %q: want a literal ip:port: %w", addr, err)
	}
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	fam := unix.AF_INET
	if ap.Addr().Is6() {
		fam = unix.AF_INET6
	}

	// One trip into the namespace for all sockets; everything after that
	// works from any thread.
	fds := make([]int, 0, count)
	err = n.Do(func() error {
		for range count {
			fd, err := unix.Socket(fam, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
			if err != nil {
				return err
			}
			fds = append(fds, fd)
			for _, o := range opts {
				if err := o(fd); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("create %d sockets in %s: %w", count, n, err)
	}

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res := &DialResult{Conns: make([]*DialConn, count)}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, fd := range fds {
		c := &DialConn{}
		res.Conns[i] = c
		wg.Go(func() {
			<-start
			c.file, c.Err = connect(ctx, fd, ap)
			if c.file != nil {
				if rc, err := c.file.SyscallConn(); err == nil {
					_ = rc.Control(func(fd uintptr) {
						if sa, err := unix.Getsockname(int(fd)); err == nil {
							c.Local = addrPort(sa)
						}
					})
				}
			}
		})
	}
	// Release all goroutines together so the SYNs race on every CPU, the
	// way a real burst does.
	close(start)
	wg.Wait()

	for _, c := range res.Conns {
		switch {
		case c.Err == nil:
			res.Established++
		case errors.Is(c.Err, ErrPending):
			res.Pending++
		default:
			res.Failed++
		}
	}
	return res, nil
}

// connect runs a non-blocking connect on fd and waits for it in Go's poller.
// It returns the socket wrapped in an *os.File unless connect failed.
func connect(ctx context.Context, fd int, ap netip.AddrPort) (*os.File, error) {
	// The poller's deadline can fire a moment before ctx's own timer, so a
	// caller looping on ctx.Err() may come back after the deadline: don't
	// send a SYN then.
	if dl, ok := ctx.Deadline(); ctx.Err() != nil || ok && !time.Now().Before(dl) {
		unix.Close(fd)
		return nil, ErrPending
	}
	// A fresh Sockaddr per call: unix.Connect encodes into a buffer inside
	// it, so sharing one between goroutines is a data race.
	err := unix.Connect(fd, sockaddr(ap))
	switch {
	case err == nil, errors.Is(err, unix.EINPROGRESS), errors.Is(err, unix.EINTR):
	default:
		unix.Close(fd)
		return nil, err
	}
	// Register with the poller only after connect(2): a fresh socket is
	// in TCP_CLOSE, which polls as EPOLLHUP, and that stale "writable"
	// edge would otherwise wake the wait below at once.
	f := os.NewFile(uintptr(fd), "netlab-conn")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = f.SetWriteDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = f.SetWriteDeadline(time.Unix(1, 0)) })
	defer stop()

	var connErr error
	werr := rc.Write(func(s uintptr) bool {
		soerr, err := unix.GetsockoptInt(int(s), unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			connErr = err
			return true
		}
		if soerr != 0 {
			connErr = unix.Errno(soerr)
			return true
		}
		// Writable without error can still be a spurious wakeup; only a
		// peer address proves the handshake finished.
		if _, err := unix.Getpeername(int(s)); err != nil {
			return !errors.Is(err, unix.ENOTCONN)
		}
		return true
	})
	_ = f.SetWriteDeadline(time.Time{})
	if werr != nil {
		if errors.Is(werr, os.ErrDeadlineExceeded) {
			return f, ErrPending
		}
		f.Close()
		return nil, werr
	}
	if connErr != nil {
		f.Close()
		return nil, connErr
	}
	return f, nil
}

// Churn opens and closes connections to addr (a literal "ip:port") from
// `concurrency` workers inside the namespace for d (or until ctx ends), as
// fast as the handshakes complete, and returns how many connected (0 for an
// address that is not a literal ip:port). It outruns most acceptors, so it
// can overflow even a large backlog; pace with DialMany for a steady load. Each
// connection is closed with an RST (SO_LINGER 0) so churn leaves no
// TIME_WAIT sockets and cannot run out of ephemeral ports.
func (n *Netns) Churn(ctx context.Context, addr string, concurrency int, d time.Duration) (conns int) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return 0
	}
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	fam := unix.AF_INET
	if ap.Addr().Is6() {
		fam = unix.AF_INET6
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var total atomic.Int64
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			for ctx.Err() == nil {
				fd, err := n.Socket(fam, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
				if err != nil {
					return
				}
				f, err := connect(ctx, fd, ap)
				if err == nil {
					total.Add(1)
				}
				if f != nil {
					if rc, rerr := f.SyscallConn(); rerr == nil {
						_ = rc.Control(func(fd uintptr) {
							_ = unix.SetsockoptLinger(int(fd), unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
						})
					}
					f.Close()
				}
				if errors.Is(err, ErrPending) {
					return // only the deadline or ctx ends a connect so
				}
				if err != nil {
					// Refused or reset: back off instead of spinning.
					select {
					case <-ctx.Done():
					case <-time.After(10 * time.Millisecond):
					}
				}
			}
		})
	}
	wg.Wait()
	return int(total.Load())
}
