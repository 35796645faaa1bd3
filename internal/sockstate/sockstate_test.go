package sockstate

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/synq-trace/synq/internal/kerneltest"
	"github.com/synq-trace/synq/internal/netns"
)

func TestStateNames(t *testing.T) {
	for _, s := range States {
		got, err := ParseState(s.String())
		if err != nil || got != s {
			t.Errorf("ParseState(%s) = %v, %v", s, got, err)
		}
	}
	for in, want := range map[string]State{"ESTAB": Established, "syn-recv": SynRecv, "TIME-WAIT": TimeWait, "finwait2": FinWait2} {
		if got, err := ParseState(in); err != nil || got != want {
			t.Errorf("ParseState(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseState("BOGUS"); err == nil {
		t.Error("ParseState(BOGUS) succeeded")
	}
	if NewSynRecv.String() != "NEW_SYN_RECV" || State(12) != NewSynRecv || State(99).String() != "STATE_99" {
		t.Error("state numbering is off")
	}
}

func TestHints(t *testing.T) {
	c := &Counts{Ports: map[PortState]int{
		{80, TimeWait}: 1500, {40000, TimeWait}: 1,
		{443, NewSynRecv}: 80, {443, SynRecv}: 30, {8443, NewSynRecv}: 5,
		{9000, CloseWait}: 99,
	}}
	c.States[TimeWait] = 1501
	c.States[NewSynRecv] = 85
	c.States[SynRecv] = 30
	c.States[CloseWait] = 99
	h := c.Hints(DefaultThresholds)
	if len(h) != 2 {
		t.Fatalf("hints = %v, want TIME_WAIT and SYN_RECV ones", h)
	}
	if h[0].State != "TIME_WAIT" || h[0].TopPort != 80 || h[0].TopPortCount != 1500 || !strings.Contains(h[0].Message, "no HTTP keep-alive") {
		t.Errorf("TIME_WAIT hint = %+v", h[0])
	}
	if h[1].Count != 115 || h[1].TopPort != 443 || h[1].TopPortCount != 110 || !strings.Contains(h[1].Message, "SYN flood or lost ACKs") {
		t.Errorf("SYN_RECV hint = %+v", h[1])
	}
	h = c.Hints(Thresholds{CloseWait: 99})
	if len(h) != 1 || !strings.Contains(h[0].String(), "99 CLOSE_WAIT (threshold 99): the application does not close its sockets") {
		t.Errorf("CLOSE_WAIT hint = %v", h)
	}
}

// lab builds connections in a private netns. Sockets are created inside
// ns.Do and so belong to the namespace.
type lab struct {
	t     *testing.T
	ns    netns.NS
	close []io.Closer
}

func (l *lab) do(fn func() error) {
	l.t.Helper()
	if err := l.ns.Do(fn); err != nil {
		l.t.Fatal(err)
	}
}

func (l *lab) listen(network, addr string, deferAccept bool) net.Listener {
	l.t.Helper()
	var ln net.Listener
	lc := net.ListenConfig{}
	if deferAccept {
		lc.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				// The bare ACK of the handshake is dropped and the request
				// stays in NEW_SYN_RECV until data or 60 s.
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT, 60)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	l.do(func() error {
		var err error
		ln, err = lc.Listen(context.Background(), network, addr)
		return err
	})
	l.close = append(l.close, ln)
	return ln
}

func (l *lab) dial(ln net.Listener) net.Conn {
	l.t.Helper()
	var c net.Conn
	l.do(func() error {
		var err error
		c, err = net.Dial(ln.Addr().Network(), ln.Addr().String())
		return err
	})
	l.close = append(l.close, c)
	return c
}

// pair returns a connected client and server.
func (l *lab) pair(ln net.Listener) (client, server net.Conn) {
	l.t.Helper()
	c := l.dial(ln)
	s, err := ln.Accept()
	if err != nil {
		l.t.Fatal(err)
	}
	if s.RemoteAddr().String() != c.LocalAddr().String() {
		l.t.Fatalf("accepted %s, dialed from %s", s.RemoteAddr(), c.LocalAddr())
	}
	l.close = append(l.close, s)
	return c, s
}

// waitEOF reads until the peer's FIN arrived.
func waitEOF(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read on %s: %v, want EOF", c.LocalAddr(), err)
	}
}

func port(a net.Addr) uint16 { return uint16(a.(*net.TCPAddr).Port) }

func TestKernelCount(t *testing.T) {
	ns := kerneltest.NS(t)
	l := &lab{t: t, ns: ns}
	defer func() {
		for i := len(l.close) - 1; i >= 0; i-- {
			l.close[i].Close()
		}
	}()

	c, err := Count(ns)
	if err != nil {
		t.Fatal(err)
	}
	if c.Total != 0 {
		t.Fatalf("fresh netns has %d TCP sockets: %+v", c.Total, c.States)
	}

	const (
		e4 = 5 // established pairs over IPv4
		e6 = 3 // ... over IPv6
		a  = 4 // client closed, server did not: CLOSE_WAIT + FIN_WAIT2
		b  = 6 // client closed, then server: client in TIME_WAIT
		d  = 2 // handshakes held by TCP_DEFER_ACCEPT: NEW_SYN_RECV
	)
	l4 := l.listen("tcp4", "127.0.0.1:0", false)
	ld := l.listen("tcp4", "127.0.0.1:0", true)
	v6 := true
	var l6 net.Listener
	if err := ns.Do(func() error {
		x, err := net.Listen("tcp6", "[::1]:0")
		if err == nil {
			l.close = append(l.close, x)
			l6 = x
		}
		return err
	}); err != nil {
		t.Logf("no IPv6 on loopback (%v): IPv6 part skipped", err)
		v6 = false
	}

	for range e4 {
		l.pair(l4)
	}
	if v6 {
		for range e6 {
			l.pair(l6)
		}
	}
	for range a {
		cl, sv := l.pair(l4)
		cl.Close()
		waitEOF(t, sv)
	}
	for range b {
		cl, sv := l.pair(l4)
		cl.Close()
		waitEOF(t, sv)
		sv.Close()
	}
	for range d {
		l.dial(ld)
	}

	want := [NumStates]int{}
	want[Listen] = 2
	want[Established] = 2*e4 + d
	if v6 {
		want[Listen]++
		want[Established] += 2 * e6
	}
	want[CloseWait] = a
	want[FinWait2] = a
	want[TimeWait] = b
	want[NewSynRecv] = d

	// FIN and ACK processing on loopback is quick but asynchronous.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if c, err = Count(ns); err != nil {
			t.Fatal(err)
		}
		if c.States == want || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, s := range States {
		if c.State(s) != want[s] {
			t.Errorf("%s = %d, want %d", s, c.State(s), want[s])
		}
	}
	total := 0
	for _, n := range want {
		total += n
	}
	if c.Total != total || c.IPv4+c.IPv6 != total {
		t.Errorf("Total = %d (IPv4 %d + IPv6 %d), want %d", c.Total, c.IPv4, c.IPv6, total)
	}
	if v6 && c.IPv6 != 1+2*e6 {
		t.Errorf("IPv6 = %d, want %d", c.IPv6, 1+2*e6)
	}

	// Server-side sockets sit on the listener's port.
	p4, pd := port(l4.Addr()), port(ld.Addr())
	for k, n := range map[PortState]int{
		{p4, Listen}: 1, {p4, Established}: e4, {p4, CloseWait}: a,
		{pd, Listen}: 1, {pd, NewSynRecv}: d,
	} {
		if c.Ports[k] != n {
			t.Errorf("port %d %s = %d, want %d", k.Port, k.State, c.Ports[k], n)
		}
	}
	if v6 && c.Ports[PortState{port(l6.Addr()), Established}] != e6 {
		t.Errorf("IPv6 listener port established = %d, want %d", c.Ports[PortState{port(l6.Addr()), Established}], e6)
	}
	rows := c.ByPort()
	sum := 0
	for i, r := range rows {
		sum += r.Count
		if i > 0 && rows[i-1].Count < r.Count {
			t.Errorf("ByPort not sorted by count at %d", i)
		}
	}
	if sum != c.Total {
		t.Errorf("ByPort sums to %d, want %d", sum, c.Total)
	}

	h := c.Hints(Thresholds{TimeWait: b, SynRecv: d, CloseWait: a})
	if len(h) != 3 || h[2].State != "CLOSE_WAIT" || h[2].TopPort != p4 || h[1].TopPort != pd {
		t.Errorf("hints = %+v", h)
	}

	crossCheckSS(t, ns, c)
}

// crossCheckSS compares with `ss -tan` in the namespace when ss and ip are
// installed. ss prints request sockets as SYN-RECV, as the kernel reports
// them.
func crossCheckSS(t *testing.T, ns netns.NS, c *Counts) {
	ip, err1 := exec.LookPath("ip")
	_, err2 := exec.LookPath("ss")
	if err1 != nil || err2 != nil {
		t.Log("ss or ip not installed: no cross-check")
		return
	}
	out, err := exec.Command(ip, "netns", "exec", ns.Name, "ss", "-tanH").Output()
	if err != nil {
		t.Fatalf("ss: %v", err)
	}
	ss := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			ss[f[0]]++
		}
	}
	mine := map[string]int{}
	for _, s := range States {
		if n := c.State(s); n > 0 {
			name := map[State]string{Established: "ESTAB", SynRecv: "SYN-RECV", NewSynRecv: "SYN-RECV", Listen: "LISTEN"}[s]
			if name == "" {
				name = strings.ReplaceAll(s.String(), "_", "-")
				name = strings.Replace(name, "WAIT1", "WAIT-1", 1)
				name = strings.Replace(name, "WAIT2", "WAIT-2", 1)
			}
			mine[name] += n
		}
	}
	if fmt.Sprint(ss) != fmt.Sprint(mine) {
		t.Errorf("ss -tan says %v, Count says %v", ss, mine)
	}
}

// BenchmarkCount counts a netns holding SYNQ_BENCH_SOCKETS TCP sockets
// (default 4000): established pairs up to 8000 sockets (file descriptors
// are limited), TIME_WAIT sockets for the rest.
func BenchmarkCount(b *testing.B) {
	n := 4000
	if v := os.Getenv("SYNQ_BENCH_SOCKETS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	ns := kerneltest.NS(b)
	var keep []io.Closer
	defer func() {
		for _, c := range keep {
			c.Close()
		}
	}()
	estab := min(n/2, 4000)
	tw := n - 2*estab
	err := ns.Do(func() error {
		// Keep every TIME_WAIT socket: with the default tcp_tw_reuse=2,
		// connect on loopback would recycle them. /proc/sys/net is the
		// opening thread's namespace.
		if err := os.WriteFile("/proc/sys/net/ipv4/tcp_tw_reuse", []byte("0"), 0o644); err != nil {
			return err
		}
		var lns []net.Listener
		// One destination port offers ~28k ephemeral ports; spread the
		// TIME_WAIT sockets over listeners.
		for range 1 + tw/15000 {
			ln, err := net.Listen("tcp4", "127.0.0.1:0")
			if err != nil {
				return err
			}
			lns = append(lns, ln)
			keep = append(keep, ln)
		}
		connect := func(ln net.Listener) (net.Conn, net.Conn, error) {
			c, err := net.Dial("tcp4", ln.Addr().String())
			if err != nil {
				return nil, nil, err
			}
			s, err := ln.Accept()
			if err != nil {
				c.Close()
				return nil, nil, err
			}
			return c, s, nil
		}
		for range estab {
			c, s, err := connect(lns[0])
			if err != nil {
				return err
			}
			keep = append(keep, c, s)
		}
		for i := range tw {
			c, s, err := connect(lns[i%len(lns)])
			if err != nil {
				return err
			}
			c.Close() // client closes first: its side goes to TIME_WAIT
			s.Close()
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	c, err := Count(ns)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("%d sockets: %d ESTABLISHED, %d TIME_WAIT, %d other", c.Total, c.States[Established], c.States[TimeWait], c.Total-c.States[Established]-c.States[TimeWait])
	if ip, err := exec.LookPath("ip"); err == nil {
		start := time.Now()
		if out, err := exec.Command(ip, "netns", "exec", ns.Name, "ss", "-tanH").Output(); err == nil {
			b.Logf("for comparison, ss -tan took %v for %d lines", time.Since(start), strings.Count(string(out), "\n"))
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := Count(ns); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(c.Total), "sockets")
}
