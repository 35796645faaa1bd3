package netlab_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/synq-trace/synq/internal/kerneltest"
	"github.com/synq-trace/synq/internal/netlab"
)

func newNetns(t *testing.T, name string) *netlab.Netns {
	t.Helper()
	n, err := netlab.New(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	})
	return n
}

func threadNetnsInode(t *testing.T) uint64 {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func TestKernelNetnsLifecycle(t *testing.T) {
	kerneltest.Root(t)
	host := threadNetnsInode(t)

	for _, name := range []string{"", fmt.Sprintf("synq-netlab-test-%d", os.Getpid())} {
		t.Run(fmt.Sprintf("name=%q", name), func(t *testing.T) {
			n, err := netlab.New(name)
			if err != nil {
				t.Fatal(err)
			}
			if got := threadNetnsInode(t); got != host {
				t.Fatalf("New moved the caller to netns %d, want host %d", got, host)
			}
			if n.Inode() == host || n.Inode() == 0 {
				t.Fatalf("netns inode %d, host %d", n.Inode(), host)
			}
			var inside uint64
			if err := n.Do(func() error { inside = threadNetnsInode(t); return nil }); err != nil {
				t.Fatal(err)
			}
			if inside != n.Inode() {
				t.Fatalf("inside Do: netns %d, want %d", inside, n.Inode())
			}
			if got := threadNetnsInode(t); got != host {
				t.Fatalf("Do left the caller in netns %d", got)
			}
			// lo must be up: 127.0.0.1 is only usable then.
			l, err := n.Listen("tcp4", "127.0.0.1:0", 4)
			if err != nil {
				t.Fatal(err)
			}
			l.Close()

			path := filepath.Join(netlab.NetnsDir, name)
			if name != "" {
				var st unix.Stat_t
				if err := unix.Stat(path, &st); err != nil || st.Ino != n.Inode() {
					t.Fatalf("%s: inode %d, err %v; want inode %d", path, st.Ino, err, n.Inode())
				}
				if _, err := netlab.New(name); err == nil {
					t.Fatal("second New with the same name succeeded")
				}
			}
			if err := n.Close(); err != nil {
				t.Fatal(err)
			}
			if name != "" {
				if _, err := os.Stat(path); !os.IsNotExist(err) {
					t.Fatalf("%s still there after Close: %v", path, err)
				}
			}
			if err := n.Do(func() error { return nil }); err != netlab.ErrClosed {
				t.Fatalf("Do after Close: %v, want ErrClosed", err)
			}
		})
	}
}

func TestKernelSysctl(t *testing.T) {
	kerneltest.Root(t)
	n := newNetns(t, "")
	tests := []struct{ key, value string }{
		{"net.ipv4.tcp_syncookies", "0"},
		{"net.ipv4.tcp_syncookies", "2"},
		{"net.ipv4.tcp_abort_on_overflow", "1"},
		{"net.ipv4.ip_local_port_range", "40000 40100"},
		{"net/core/somaxconn", "64"},
	}
	for _, tt := range tests {
		t.Run(tt.key+"="+tt.value, func(t *testing.T) {
			hostBefore, err := os.ReadFile(netlab.SysctlPath(tt.key))
			if err != nil {
				t.Fatal(err)
			}
			if err := n.Sysctl(tt.key, tt.value); err != nil {
				t.Fatal(err)
			}
			got, err := n.ReadSysctl(tt.key)
			if err != nil {
				t.Fatal(err)
			}
			// ip_local_port_range reads back tab-separated.
			if strings.Join(strings.Fields(got), " ") != tt.value {
				t.Fatalf("read back %q, want %q", got, tt.value)
			}
			hostAfter, _ := os.ReadFile(netlab.SysctlPath(tt.key))
			if string(hostAfter) != string(hostBefore) {
				t.Fatalf("host %s changed: %q -> %q", tt.key, hostBefore, hostAfter)
			}
		})
	}
}

func TestKernelListenOverflow(t *testing.T) {
	kerneltest.Root(t)
	n := newNetns(t, "")
	l := kerneltest.Listen(t, n, "tcp4", "127.0.0.1:0", 1)

	host0, err := netlab.ReadCounters()
	if err != nil {
		t.Fatal(err)
	}
	ns0, err := n.Counters()
	if err != nil {
		t.Fatal(err)
	}

	res, err := n.DialMany(context.Background(), l.String(), 8, 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()

	ns1, err := n.Counters()
	if err != nil {
		t.Fatal(err)
	}
	host1, err := netlab.ReadCounters()
	if err != nil {
		t.Fatal(err)
	}
	d, hd := ns1.Sub(ns0), host1.Sub(host0)
	qlen, qmax, err := l.Queue()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("dials: %d established, %d pending, %d failed; queue %d/%d; netns ListenOverflows +%d ListenDrops +%d",
		res.Established, res.Pending, res.Failed, qlen, qmax, d["TcpExt.ListenOverflows"], d["TcpExt.ListenDrops"])

	if d["TcpExt.ListenOverflows"] == 0 {
		t.Error("netns ListenOverflows did not rise")
	}
	if hd["TcpExt.ListenOverflows"] != 0 {
		t.Errorf("host ListenOverflows rose by %d (another process overflowing a host listener?)", hd["TcpExt.ListenOverflows"])
	}
	if qmax != 1 || qlen < 2 {
		t.Errorf("accept queue %d/%d, want limit 1 and at least 2 queued (full is len > limit)", qlen, qmax)
	}
	if res.Established+res.Pending+res.Failed != 8 || res.Failed != 0 {
		t.Errorf("unexpected dial result %+v", res)
	}
	if res.Pending == 0 {
		t.Error("no connect was left pending by a full queue")
	}
}

func TestKernelServerDelay(t *testing.T) {
	kerneltest.Root(t)
	n := newNetns(t, "")
	l := kerneltest.Listen(t, n, "tcp4", "127.0.0.1:0", 16)
	const delay, conns = 50 * time.Millisecond, 6

	start := time.Now()
	s := netlab.Serve(l, netlab.ServerConfig{Delay: delay, Keep: true})
	defer s.Stop()
	res, err := n.DialMany(context.Background(), l.String(), conns, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	if res.Established != conns {
		t.Fatalf("dial result %+v, want all %d established", res, conns)
	}
	if !s.WaitAccepts(conns, 2*time.Second) {
		t.Fatalf("accepted %d of %d", s.Accepts(), conns)
	}
	if el := time.Since(start); el < conns*delay {
		t.Errorf("accepted %d conns in %v, faster than %d × %v", conns, el, conns, delay)
	}
	if q, _, _ := l.Queue(); q != 0 {
		t.Errorf("accept queue still holds %d", q)
	}
	s.Stop()
	if s.Err() != nil {
		t.Error(s.Err())
	}
}

func TestKernelTCP6AndReusePort(t *testing.T) {
	kerneltest.Root(t)
	n := newNetns(t, "")
	l1, err := n.Listen("tcp6", "[::1]:0", 128, netlab.ReusePort())
	if err != nil {
		if strings.Contains(err.Error(), "not supported") {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	defer l1.Close()
	l2, err := n.Listen("tcp6", l1.String(), 128, netlab.ReusePort())
	if err != nil {
		t.Fatalf("second SO_REUSEPORT listener on %s: %v", l1, err)
	}
	defer l2.Close()
	if _, err := n.Listen("tcp6", l1.String(), 8); err == nil {
		t.Fatal("listener without SO_REUSEPORT bound a shared port")
	}

	s1, s2 := netlab.Serve(l1, netlab.ServerConfig{}), netlab.Serve(l2, netlab.ServerConfig{})
	got := n.Churn(context.Background(), l1.String(), 2, 300*time.Millisecond)
	s1.Stop()
	s2.Stop()
	t.Logf("churn: %d conns; accepts %d + %d", got, s1.Accepts(), s2.Accepts())
	if got == 0 || s1.Accepts()+s2.Accepts() == 0 {
		t.Fatal("no connections")
	}
	if s1.Accepts() == 0 || s2.Accepts() == 0 {
		t.Error("SO_REUSEPORT did not spread connections over both listeners")
	}
}

func TestKernelChurnLeavesNoTimeWait(t *testing.T) {
	kerneltest.Root(t)
	n := newNetns(t, "")
	l := kerneltest.Listen(t, n, "tcp4", "127.0.0.1:0", 128)
	s := netlab.Serve(l, netlab.ServerConfig{})
	c0, _ := n.Counters()
	got := n.Churn(context.Background(), l.String(), 4, 300*time.Millisecond)
	s.Stop()
	c1, _ := n.Counters()
	t.Logf("overflows +%d", c1.Sub(c0)["TcpExt.ListenOverflows"])
	if got == 0 {
		t.Fatal("churn made no connections")
	}
	var tcp string
	err := n.Do(func() error {
		b, err := os.ReadFile("/proc/thread-self/net/tcp")
		tcp = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	tw := 0
	for _, line := range strings.Split(tcp, "\n")[1:] {
		if f := strings.Fields(line); len(f) > 3 && f[3] == "06" {
			tw++
		}
	}
	t.Logf("churn: %d conns, %d accepted, %d TIME_WAIT", got, s.Accepts(), tw)
	if tw != 0 {
		t.Errorf("%d TIME_WAIT sockets left by churn", tw)
	}
}
