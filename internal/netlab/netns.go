// Package netlab builds real TCP listen-path situations (accept-queue
// overflows, slow acceptors, connection churn) inside private network
// namespaces, for kernel integration tests and the built-in demo.
//
// Everything is done with syscalls and netlink from Go, never with external
// commands: the test VMs have only busybox and no ip(8).
//
// Traffic stays on the loopback device of namespaces this package creates, so
// the host's counters and listeners are never touched.
package netlab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NetnsDir is where named namespaces are bind-mounted, the place ip-netns(8)
// uses, so `ip netns exec NAME` works on them where ip(8) exists.
const NetnsDir = "/run/netns"

// Netns is a network namespace created by New. Its file descriptor keeps it
// alive; a named one is also bind-mounted under NetnsDir until Close.
type Netns struct {
	name  string
	inode uint64

	mu     sync.RWMutex
	fd     int // -1 once closed
	closed bool
}

// New creates a fresh network namespace with lo up. With a non-empty name it
// is bind-mounted at /run/netns/NAME (an existing one is an error: see
// DeleteNamed); with "" it is anonymous and lives as long as the Netns or
// any socket created in it.
//
// The calling goroutine's namespace is unchanged.
func New(name string) (*Netns, error) {
	if name != "" {
		if err := checkName(name); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(NetnsDir, 0o755); err != nil {
			return nil, fmt.Errorf("create %s: %w", NetnsDir, err)
		}
	}

	fd, err := unshareNetns(name)
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		if name != "" {
			_ = DeleteNamed(name)
		}
		return nil, fmt.Errorf("stat new netns: %w", err)
	}
	n := &Netns{name: name, fd: fd, inode: st.Ino}

	if err := n.linkUp("lo"); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// unshareNetns creates the namespace on a locked thread and puts the thread
// back where it was. It returns an fd of the new namespace.
func unshareNetns(name string) (fd int, err error) {
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return -1, fmt.Errorf("open current netns: %w", err)
	}
	defer unix.Close(orig)

	restored := false
	defer func() {
		if restored {
			runtime.UnlockOSThread()
		}
		// Otherwise the thread stays locked and is in an unknown namespace:
		// the runtime terminates a thread whose goroutine exits while
		// locked, so it can never run another goroutine.
	}()

	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		restored = true // unshare failed: the thread did not move
		return -1, fmt.Errorf("unshare network namespace (needs CAP_SYS_ADMIN): %w", err)
	}
	fd, err = unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		err = fmt.Errorf("open new netns: %w", err)
	} else if name != "" {
		err = bindNetns(name)
		if err != nil {
			unix.Close(fd)
		}
	}
	if serr := unix.Setns(orig, unix.CLONE_NEWNET); serr != nil {
		if err == nil {
			unix.Close(fd)
			if name != "" {
				_ = DeleteNamed(name)
			}
		}
		return -1, fmt.Errorf("return to original netns: %w", serr)
	}
	restored = true
	if err != nil {
		return -1, err
	}
	return fd, nil
}

func bindNetns(name string) error {
	path := filepath.Join(NetnsDir, name)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("netns %q already exists (%s)", name, path)
		}
		return fmt.Errorf("create %s: %w", path, err)
	}
	f.Close()
	if err := unix.Mount("/proc/thread-self/ns/net", path, "none", unix.MS_BIND, ""); err != nil {
		os.Remove(path)
		return fmt.Errorf("bind-mount netns at %s: %w", path, err)
	}
	return nil
}

// DeleteNamed removes /run/netns/NAME, whoever created it. A missing one is
// not an error. The namespace itself lives on while anything uses it.
func DeleteNamed(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	path := filepath.Join(NetnsDir, name)
	// EINVAL: a leftover file that is no longer a mount point.
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil &&
		!errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}

func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return fmt.Errorf("invalid netns name %q", name)
	}
	return nil
}

func (n *Netns) linkUp(name string) error {
	// Only NETLINK_ROUTE: with no family given, netlink opens XFRM and
	// NETFILTER sockets too, which fail with EPROTONOSUPPORT on kernels
	// where those are unloaded modules (Debian's, in the test VMs).
	h, err := netlink.NewHandleAt(netns.NsHandle(n.fd), unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink socket in netns: %w", err)
	}
	defer h.Close()
	link, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find %s in netns: %w", name, err)
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s up in netns: %w", name, err)
	}
	return nil
}

// Name is the name under NetnsDir, or "" for an anonymous namespace.
func (n *Netns) Name() string { return n.name }

// Inode is the namespace's inode number, the value BPF sees as
// sock_net(sk)->ns.inum and ls -L /proc/PID/ns/net shows.
func (n *Netns) Inode() uint64 { return n.inode }

// FD is a file descriptor of the namespace, usable with setns(2) or
// netlink.NewHandleAt until Close. Do not close it.
func (n *Netns) FD() int {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.fd
}

func (n *Netns) String() string {
	if n.name != "" {
		return fmt.Sprintf("netns %s (inode %d)", n.name, n.inode)
	}
	return fmt.Sprintf("netns inode %d", n.inode)
}

// Close releases the namespace and, for a named one, deletes its
// /run/netns entry. Sockets created in it keep it alive until they close.
func (n *Netns) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	err := unix.Close(n.fd)
	n.fd = -1
	if n.name != "" {
		if derr := DeleteNamed(n.name); derr != nil {
			err = errors.Join(err, derr)
		}
	}
	return err
}

// ErrClosed is returned when a closed Netns is used.
var ErrClosed = errors.New("netlab: netns closed")

// Do runs fn on an OS thread that is inside the namespace, then moves the
// thread back. Anything fn does that depends on "the current namespace"
// (socket(2), opening /proc/thread-self/net/* or /proc/sys/net/*) sees this
// one. Goroutines that fn starts do not: they run on other threads.
func (n *Netns) Do(fn func() error) error {
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open current netns: %w", err)
	}
	defer unix.Close(orig)
	if err := n.enter(); err != nil {
		runtime.UnlockOSThread()
		return err
	}

	ferr := fn()

	if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: the runtime kills it when this
		// goroutine exits instead of reusing a thread in our namespace.
		return errors.Join(ferr, fmt.Errorf("leave %s: %w", n, err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// enter moves the calling (locked) thread into the namespace. The lock is
// held only for setns: once entered, closing n's fd does not matter.
func (n *Netns) enter() error {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.closed {
		return ErrClosed
	}
	if err := unix.Setns(n.fd, unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("enter %s: %w", n, err)
	}
	return nil
}

// Socket creates a socket inside the namespace. A socket belongs to the
// namespace it was created in for life, so bind, connect, accept and close
// can then happen from any thread.
func (n *Netns) Socket(domain, typ, proto int) (int, error) {
	var fd int
	err := n.Do(func() error {
		var err error
		fd, err = unix.Socket(domain, typ, proto)
		return err
	})
	if err != nil {
		return -1, fmt.Errorf("socket in %s: %w", n, err)
	}
	return fd, nil
}

// sysctlPath maps "net.ipv4.tcp_syncookies" (or "net/ipv4/tcp_syncookies")
// to its /proc/sys file.
func sysctlPath(key string) string {
	if !strings.ContainsRune(key, '/') {
		key = strings.ReplaceAll(key, ".", "/")
	}
	return filepath.Join("/proc/sys", key)
}

// Sysctl writes a sysctl inside the namespace, e.g.
// Sysctl("net.ipv4.ip_local_port_range", "40000 40100").
//
// Only per-namespace sysctls (most of net.*) can be set this way; others,
// like net.core.rmem_max on older kernels or anything outside net., are
// global and writing them changes the host.
func (n *Netns) Sysctl(key, value string) error {
	path := sysctlPath(key)
	// /proc/sys/net files bind to the opener's namespace at open(2).
	err := n.Do(func() error {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		_, err = f.WriteString(value)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("sysctl %s=%q in %s: %w", key, value, n, err)
	}
	return nil
}

// ReadSysctl reads a sysctl inside the namespace, whitespace-trimmed.
func (n *Netns) ReadSysctl(key string) (string, error) {
	path := sysctlPath(key)
	var b []byte
	err := n.Do(func() error {
		var err error
		b, err = os.ReadFile(path)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("read sysctl %s in %s: %w", key, n, err)
	}
	return strings.TrimSpace(string(b)), nil
}
