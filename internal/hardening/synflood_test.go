package hardening

import (
	"net/netip"
	"testing"
	"time"

	"github.com/synq-trace/synq/internal/kerneltest"
)

// A SYN with its checksum filled in sums to zero, header and pseudo-header.
func TestBuildSYNChecksums(t *testing.T) {
	var b [44]byte
	src := netip.MustParseAddr("10.99.1.2")
	dst := netip.MustParseAddrPort("127.0.0.1:8080")
	BuildSYN(b[:], src, 40000, dst, 12345)
	if got := Checksum(0, b[:20]); got != 0 {
		t.Errorf("IP header checksum verifies to %#x, want 0", got)
	}
	pseudo := []byte{10, 99, 1, 2, 127, 0, 0, 1, 0, 6, 0, 24}
	if got := Checksum(sum(0, pseudo), b[20:]); got != 0 {
		t.Errorf("TCP checksum verifies to %#x, want 0", got)
	}
	if b[33] != 0x02 {
		t.Errorf("TCP flags %#x, want SYN only", b[33])
	}
}

// Spoofed SYNs at a backlog-8 listener that never accepts, without
// syncookies: the SYN queue fills with requests that never complete, every
// other SYN is a ListenDrop, and no SYN-ACK is answered (no RST goes out, none is
// retransmitted by a peer).
func TestKernelFloodFillsSynQueue(t *testing.T) {
	ns := kerneltest.Netns(t, nil)
	if err := ns.Sysctl("net.ipv4.tcp_syncookies", "0"); err != nil {
		t.Fatal(err)
	}
	src := netip.MustParsePrefix("10.99.0.0/16")
	if err := Blackhole(ns, src); err != nil {
		t.Fatal(err)
	}
	l := kerneltest.Listen(t, ns, "tcp4", "127.0.0.1:0", 8)
	f, err := NewFlooder(ns, src, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c0, err := ns.Counters()
	if err != nil {
		t.Fatal(err)
	}
	const n = 2000
	start := time.Now()
	if _, err := f.Send(l.Addr(), n); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	c1, err := ns.Counters()
	if err != nil {
		t.Fatal(err)
	}
	d := c1.Sub(c0)
	t.Logf("%d SYNs in %s: ListenDrops %d TCPReqQFullDrop %d OutRsts %d InSegs %d", n, elapsed, d["TcpExt.ListenDrops"], d["TcpExt.TCPReqQFullDrop"], d["Tcp.OutRsts"], d["Tcp.InSegs"])
	// InSegs also counts the looped-back SYN-ACKs (see Blackhole).
	if d["Tcp.InSegs"] < n {
		t.Errorf("the listener's netns received %d segments, want at least the %d SYNs", d["Tcp.InSegs"], n)
	}
	if d["TcpExt.ListenDrops"] < n-64 || d["TcpExt.ListenDrops"] >= n {
		t.Errorf("ListenDrops %d: want all but the SYN queue's few of %d SYNs dropped", d["TcpExt.ListenDrops"], n)
	}
	if d["Tcp.OutRsts"] != 0 {
		t.Errorf("%d RSTs sent: a SYN-ACK was answered", d["Tcp.OutRsts"])
	}
}
