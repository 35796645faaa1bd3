package netns_test

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/synq-trace/synq/internal/kerneltest"
	"github.com/synq-trace/synq/internal/netns"
)

func threadNetns(t *testing.T) string {
	t.Helper()
	l, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestCurrent(t *testing.T) {
	cur, err := netns.Current()
	if err != nil {
		t.Fatal(err)
	}
	l, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("net:[%d]", cur.Inode); l != want {
		t.Errorf("Current inode: readlink says %s, got %s", l, want)
	}
	all, err := netns.All()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, n := range all {
		if n.Inode == cur.Inode {
			found = true
		}
	}
	if !found {
		t.Errorf("All() = %v does not contain the current netns %v", all, cur)
	}
}

func TestResolveErrors(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"synq-no-such-netns", `netns "synq-no-such-netns" does not exist (not a name under /run/netns, a path, or the inode of any process's netns)`},
		{"/synq/no/such/path", `netns "/synq/no/such/path" does not exist`},
		{"12345", `netns "12345" does not exist`},
		{"net:[12345]", `netns "net:[12345]" does not exist`},
		{"", "netns: empty name"},
		{"/etc/hostname", `netns "/etc/hostname": not a network namespace`},
		{"/proc/self/ns/mnt", `netns "/proc/self/ns/mnt": not a network namespace`},
	}
	for _, tt := range tests {
		_, err := netns.Resolve(tt.in)
		if err == nil {
			t.Errorf("Resolve(%q) succeeded", tt.in)
			continue
		}
		if !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("Resolve(%q) error:\n got %v\nwant %s...", tt.in, err, tt.want)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("Resolve(%q) error is not one line: %q", tt.in, err)
		}
	}
}

func TestResolveSelf(t *testing.T) {
	cur, err := netns.Current()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{strconv.FormatUint(cur.Inode, 10), fmt.Sprintf("net:[%d]", cur.Inode), "/proc/self/ns/net", "/proc/1/ns/net"} {
		ns, err := netns.Resolve(v)
		if v == "/proc/1/ns/net" && err != nil {
			t.Logf("skip %s: %v", v, err)
			continue
		}
		if err != nil {
			t.Errorf("Resolve(%q): %v", v, err)
			continue
		}
		if v == "/proc/1/ns/net" {
			continue // pid 1 may live in another netns (containers)
		}
		if ns.Inode != cur.Inode {
			t.Errorf("Resolve(%q).Inode = %d, want %d", v, ns.Inode, cur.Inode)
		}
		if ns.Path == "" {
			t.Errorf("Resolve(%q) has no Path", v)
		}
	}
}

func TestKernelNamedNetns(t *testing.T) {
	ns := kerneltest.NS(t)
	if ns.Name == "" || ns.Path != "/run/netns/"+ns.Name {
		t.Fatalf("new netns = %+v, want a name under /run/netns", ns)
	}
	cur, err := netns.Current()
	if err != nil {
		t.Fatal(err)
	}
	if ns.Inode == cur.Inode {
		t.Fatalf("new netns has the host's inode %d", ns.Inode)
	}

	byIno, err := netns.Resolve(strconv.FormatUint(ns.Inode, 10))
	if err != nil {
		t.Fatal(err)
	}
	if byIno != ns {
		t.Errorf("Resolve(inode) = %+v, want %+v", byIno, ns)
	}
	byPath, err := netns.Resolve(ns.Path)
	if err != nil {
		t.Fatal(err)
	}
	if byPath.Inode != ns.Inode || byPath.Name != ns.Name {
		t.Errorf("Resolve(path) = %+v, want inode %d name %s", byPath, ns.Inode, ns.Name)
	}
	if got := netns.Name(ns.Inode); got != ns.Name {
		t.Errorf("Name(%d) = %q, want %q", ns.Inode, got, ns.Name)
	}
	if got := netns.Names()[ns.Inode]; got != ns.Name {
		t.Errorf("Names()[%d] = %q, want %q", ns.Inode, got, ns.Name)
	}
	if got, ok := netns.Names()[cur.Inode]; ok && cur.Name == "" {
		t.Errorf("Names() names this process's unnamed netns %d %q", cur.Inode, got)
	}
	if got := ns.String(); got != fmt.Sprintf("%s (net:[%d])", ns.Name, ns.Inode) {
		t.Errorf("String() = %q", got)
	}

	all, err := netns.All()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]bool{}
	var mine *netns.NS
	for i, n := range all {
		if seen[n.Inode] {
			t.Errorf("All() lists inode %d twice", n.Inode)
		}
		seen[n.Inode] = true
		if n.Inode == ns.Inode {
			mine = &all[i]
		}
	}
	if mine == nil || mine.Name != ns.Name {
		t.Errorf("All() = %v, want it to list %v with its name", all, ns)
	}

	// Do: the locked thread is inside, /proc/thread-self/net shows the
	// namespace's own interfaces (only lo), and the caller's thread is
	// back where it was afterwards.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before := threadNetns(t)
	var inside, dev string
	err = ns.Do(func() error {
		inside = threadNetns(t)
		b, err := os.ReadFile("/proc/thread-self/net/dev")
		dev = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("net:[%d]", ns.Inode); inside != want {
		t.Errorf("inside Do the thread is in %s, want %s", inside, want)
	}
	var ifaces []string
	for _, line := range strings.Split(dev, "\n")[2:] {
		if name, _, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			ifaces = append(ifaces, name)
		}
	}
	if len(ifaces) != 1 || ifaces[0] != "lo" {
		t.Errorf("interfaces in new netns = %v, want [lo]", ifaces)
	}
	if after := threadNetns(t); after != before {
		t.Errorf("after Do the thread is in %s, want %s", after, before)
	}

	// fn's error comes back unchanged.
	sentinel := errors.New("sentinel")
	if err := ns.Do(func() error { return sentinel }); !errors.Is(err, sentinel) {
		t.Errorf("Do returned %v, want the sentinel", err)
	}
}

func TestDoGone(t *testing.T) {
	cur, err := netns.Current()
	if err != nil {
		t.Fatal(err)
	}
	stale := cur
	stale.Inode++ // the path now "refers" to another namespace
	err = stale.Do(func() error { t.Error("fn ran in the wrong netns"); return nil })
	if err == nil || !strings.Contains(err.Error(), "is gone") {
		t.Errorf("Do on a stale NS = %v, want an 'is gone' error", err)
	}
	if err := (netns.NS{}).Do(func() error { return nil }); err == nil {
		t.Error("Do on the zero NS succeeded")
	}
}
