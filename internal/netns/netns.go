// Package netns names, finds and enters Linux network namespaces.
//
// A namespace is identified by the inode of its nsfs file: the number ip(8)
// and lsns(8) print, and the one in readlink /proc/PID/ns/net
// ("net:[4026531840]"). Names are the bind mounts under /run/netns that
// `ip netns add` creates.
package netns

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"

	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// RunDir is where `ip netns add` bind-mounts named namespaces.
const RunDir = "/run/netns"

const procDir = "/proc"

// nsGetNSType is NS_GET_NSTYPE, _IO(0xb7, 0x3) from include/uapi/linux/nsfs.h
// (Linux 4.11); golang.org/x/sys/unix does not define it.
const nsGetNSType = 0xb703

// ErrGone: the path a namespace was found by now refers to another one (the
// process it came from exited).
var ErrGone = errors.New("gone")

// NS is one network namespace.
type NS struct {
	// Inode of the namespace's nsfs file; equal inodes are the same netns.
	Inode uint64
	// Name under /run/netns, "" if it has none.
	Name string
	// Path is a file that refers to the namespace: /run/netns/NAME,
	// /proc/PID/ns/net or whatever path the operator gave.
	Path string
}

// String gives "NAME (net:[INODE])" or "net:[INODE]".
func (ns NS) String() string {
	id := fmt.Sprintf("net:[%d]", ns.Inode)
	if ns.Name != "" {
		return ns.Name + " (" + id + ")"
	}
	return id
}

// Current is the network namespace of this process (of its thread-group
// leader, which Go never moves: Do only moves locked threads).
func Current() (NS, error) {
	p := filepath.Join(procDir, strconv.Itoa(os.Getpid()), "ns", "net")
	ino, err := statInode(p)
	if err != nil {
		return NS{}, fmt.Errorf("netns of this process: %w", err)
	}
	return NS{Inode: ino, Name: Name(ino), Path: p}, nil
}

// Resolve finds the namespace v names: an inode number ("4026531840" or
// "net:[4026531840]"), a name under /run/netns, or a path to an nsfs file
// such as /proc/PID/ns/net.
func Resolve(v string) (NS, error) {
	if v == "" {
		return NS{}, errors.New("netns: empty name")
	}
	if ino, ok := parseInode(v); ok {
		return resolveInode(v, ino)
	}
	if strings.ContainsRune(v, '/') {
		return resolvePath(v)
	}
	if v == "." || v == ".." {
		return NS{}, notExist(v)
	}
	p := filepath.Join(RunDir, v)
	if _, err := os.Lstat(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return NS{}, notExist(v)
		}
		return NS{}, fmt.Errorf("netns %q: %w", v, err)
	}
	ino, err := inspect(p)
	if err != nil {
		return NS{}, fmt.Errorf("netns %q: %w", v, err)
	}
	return NS{Inode: ino, Name: v, Path: p}, nil
}

func notExist(v string) error {
	return fmt.Errorf("netns %q does not exist (not a name under %s, a path, or the inode of any process's netns)", v, RunDir)
}

// parseInode accepts "4026531840" and the readlink form "net:[4026531840]".
func parseInode(v string) (uint64, bool) {
	s := v
	if strings.HasPrefix(s, "net:[") && strings.HasSuffix(s, "]") {
		s = s[len("net:[") : len(s)-1]
	}
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false
	}
	ino, err := strconv.ParseUint(s, 10, 64)
	return ino, err == nil
}

func resolveInode(v string, ino uint64) (NS, error) {
	named, err := named()
	if err != nil {
		return NS{}, err
	}
	for _, ns := range named {
		if ns.Inode == ino {
			return ns, nil
		}
	}
	if p := procPathOf(ino); p != "" {
		return NS{Inode: ino, Path: p}, nil
	}
	return NS{}, notExist(v)
}

func resolvePath(v string) (NS, error) {
	if _, err := os.Stat(v); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return NS{}, notExist(v)
		}
		return NS{}, fmt.Errorf("netns %q: %w", v, err)
	}
	ino, err := inspect(v)
	if err != nil {
		return NS{}, fmt.Errorf("netns %q: %w", v, err)
	}
	return NS{Inode: ino, Name: Name(ino), Path: v}, nil
}

// errNotNetns is returned by inspect for files that exist but are not a
// network namespace (a plain file, a mount namespace, a /run/netns entry
// whose bind mount is gone).
var errNotNetns = errors.New("not a network namespace")

// inspect opens p and checks that it is a network namespace, returning the
// namespace's inode. A stat alone cannot tell: a stale /run/netns entry is
// an empty tmpfs file, /proc/PID/ns/mnt is nsfs too.
func inspect(p string) (uint64, error) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	return inspectFd(fd)
}

func inspectFd(fd int) (uint64, error) {
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fd, &sfs); err != nil {
		return 0, err
	}
	if sfs.Type != unix.NSFS_MAGIC {
		return 0, errNotNetns
	}
	t, err := unix.IoctlRetInt(fd, nsGetNSType)
	if err != nil {
		return 0, fmt.Errorf("NS_GET_NSTYPE: %w", err)
	}
	if t != unix.CLONE_NEWNET {
		return 0, errNotNetns
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// statInode is the inode of the namespace p refers to; for /proc/PID/ns/net
// the magic link is followed to the nsfs inode.
func statInode(p string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// named lists the live namespaces under /run/netns, sorted by name. Entries
// that are not (or no longer) a network namespace are skipped.
func named() ([]NS, error) {
	ents, err := os.ReadDir(RunDir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("list %s: %w", RunDir, err)
	}
	var out []NS
	for _, e := range ents {
		p := filepath.Join(RunDir, e.Name())
		ino, err := inspect(p)
		if err != nil {
			continue
		}
		out = append(out, NS{Inode: ino, Name: e.Name(), Path: p})
	}
	return out, nil
}

// Name is the /run/netns name of the namespace with this inode, "" if it
// has none. If several names refer to it, the first in sort order wins.
//
// Each call opens every entry of /run/netns: to name many rows, call Names
// once and look the rows up in its map.
func Name(inode uint64) string {
	return Names()[inode]
}

// Names maps the inode of every live namespace under /run/netns to its name,
// the first in sort order when several names refer to one. A missing or
// unreadable /run/netns gives an empty map: names are a courtesy to the
// operator, never a reason to fail.
func Names() map[uint64]string {
	ns, _ := named()
	out := make(map[uint64]string, len(ns))
	for _, n := range ns {
		if _, dup := out[n.Inode]; !dup {
			out[n.Inode] = n.Name
		}
	}
	return out
}

// pids lists the numeric entries of /proc in ascending order.
func pids() []int {
	ents, err := os.ReadDir(procDir)
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, pid)
		}
	}
	sort.Ints(out)
	return out
}

// procPathOf finds a process in the namespace and returns its
// /proc/PID/ns/net, or "".
func procPathOf(ino uint64) string {
	for _, pid := range pids() {
		p := filepath.Join(procDir, strconv.Itoa(pid), "ns", "net")
		if got, err := statInode(p); err == nil && got == ino {
			return p
		}
	}
	return ""
}

// All lists every distinct network namespace that has a name under
// /run/netns or a process in it, sorted by inode. Named ones carry their
// /run/netns path; others the /proc/PID/ns/net of their lowest PID. A
// namespace kept alive only by an open fd or a bind mount elsewhere is not
// found.
func All() ([]NS, error) {
	byIno := map[uint64]NS{}
	ns, err := named()
	if err != nil {
		return nil, err
	}
	for _, n := range ns {
		if _, dup := byIno[n.Inode]; !dup {
			byIno[n.Inode] = n
		}
	}
	for _, pid := range pids() {
		p := filepath.Join(procDir, strconv.Itoa(pid), "ns", "net")
		ino, err := statInode(p)
		if err != nil {
			// The process exited, or is a kernel thread we may not look
			// into: neither is a reason to fail the listing.
			continue
		}
		if _, dup := byIno[ino]; !dup {
			byIno[ino] = NS{Inode: ino, Path: p}
		}
	}
	out := make([]NS, 0, len(byIno))
	for _, n := range byIno {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Inode < out[j].Inode })
	return out, nil
}

// Do runs fn on an OS thread that has entered ns, then moves the thread
// back and releases it.
//
// fn runs on a locked thread: sockets it creates belong to ns for good,
// and /proc/thread-self/net shows ns. Goroutines fn starts run elsewhere,
// in the process's own namespace.
//
// If the thread cannot be moved back, it stays locked: when the goroutine
// ends, Go terminates the thread rather than reuse it in the wrong
// namespace. If the thread is already in ns, fn just runs on it locked, so
// reading one's own namespace needs no privilege.
func (ns NS) Do(fn func() error) (err error) {
	if ns.Path == "" {
		return errors.New("netns: no path to enter")
	}
	target, err := vnetns.GetFromPath(ns.Path)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", ns, err)
	}
	defer target.Close()
	if ns.Inode != 0 {
		// A /proc/PID path may now belong to another process if the
		// first one exited; do not enter a namespace the caller did not
		// mean.
		ino, err := inspectFd(int(target))
		if err != nil {
			return fmt.Errorf("open netns %s: %s: %w", ns, ns.Path, err)
		}
		if ino != ns.Inode {
			return fmt.Errorf("netns %s is %w: %s now refers to net:[%d]", ns, ErrGone, ns.Path, ino)
		}
	}
	return ns.doIn(target, fn)
}

// Held is a namespace held open by a file descriptor: it stays enterable
// whatever happens to the path it was found by (`ip netns del`, the process
// exiting), for as long as it is held.
type Held struct {
	NS
	fd vnetns.NsHandle
}

// Hold opens ns by its path and keeps it open until Close.
func (ns NS) Hold() (*Held, error) {
	h, err := vnetns.GetFromPath(ns.Path)
	if err != nil {
		return nil, fmt.Errorf("open netns %s: %w", ns, err)
	}
	ino, err := inspectFd(int(h))
	if err == nil && ns.Inode != 0 && ino != ns.Inode {
		err = fmt.Errorf("netns %s is %w: %s now refers to net:[%d]", ns, ErrGone, ns.Path, ino)
	}
	if err != nil {
		h.Close()
		return nil, err
	}
	ns.Inode = ino
	return &Held{NS: ns, fd: h}, nil
}

// Do is NS.Do through the held descriptor.
func (h *Held) Do(fn func() error) error { return h.doIn(h.fd, fn) }

// Close lets the namespace go.
func (h *Held) Close() error { return h.fd.Close() }

// Orphaned says that no /run/netns name and no process refers to the
// namespace any more: only what holds it (synq, sockets) keeps it alive.
func (h *Held) Orphaned() bool {
	if _, ok := Names()[h.Inode]; ok {
		return false
	}
	return procPathOf(h.Inode) == ""
}

// doIn runs fn on a locked thread inside target (see Do).
func (ns NS) doIn(target vnetns.NsHandle, fn func() error) (err error) {
	runtime.LockOSThread()
	if cur, err := statInode("/proc/thread-self/ns/net"); err == nil && cur == ns.Inode {
		// Already there: setns would only add the need for CAP_SYS_ADMIN.
		defer runtime.UnlockOSThread()
		return fn()
	}
	orig, err := vnetns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns of this thread: %w", err)
	}
	defer orig.Close()
	if err := vnetns.Set(target); err != nil {
		runtime.UnlockOSThread()
		if errors.Is(err, unix.EPERM) {
			return fmt.Errorf("enter netns %s: %w (needs CAP_SYS_ADMIN)", ns, err)
		}
		return fmt.Errorf("enter netns %s: %w", ns, err)
	}
	defer func() {
		if rerr := vnetns.Set(orig); rerr != nil {
			// Leave the thread locked on purpose (see above).
			err = errors.Join(err, fmt.Errorf("return from netns %s: %w", ns, rerr))
			return
		}
		runtime.UnlockOSThread()
	}()
	return fn()
}
