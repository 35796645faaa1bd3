package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/synq-trace/synq/internal/kerneltest"
	"github.com/synq-trace/synq/internal/sockstate"
)

func TestStatesBadInput(t *testing.T) {
	checkUsage(t, statesCommand, map[string]string{
		"--by host":                `unknown --by "host" (want state or port)`,
		"--output xml":             `unknown output "xml"`,
		"--all-netns --netns 1":    "--netns and --all-netns exclude each other",
		"extra":                    "states takes no arguments",
		"--netns /synq/no/such/ns": "does not exist",
	})
}

func TestStatesCurrent(t *testing.T) {
	code, out, stderr := runCommand(statesCommand())
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.HasPrefix(out, "netns ") || !strings.Contains(out, " (IPv4 ") {
		t.Errorf("output:\n%s", out)
	}
}

func TestKernelStates(t *testing.T) {
	ns := kerneltest.NS(t)
	var ln net.Listener
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	err := ns.Do(func() error {
		var err error
		if ln, err = net.Listen("tcp4", "127.0.0.1:0"); err != nil {
			return err
		}
		for range 2 {
			c, s, err := connected(ln)
			if err != nil {
				return err
			}
			conns = append(conns, c, s)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port

	code, out, stderr := runCommand(statesCommand(), "--netns", ns.Name)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want := ns.Name + " (net:[" + strconv.FormatUint(ns.Inode, 10) + "]): 5 TCP sockets (IPv4 5, IPv6 0)\n" +
		"STATE        COUNT\n" +
		"ESTABLISHED      4\n" +
		"LISTEN           1\n"
	if !strings.HasSuffix(out, want) || strings.Contains(out, "hint") {
		t.Errorf("output:\n%s\nwant it to end with:\n%s", out, want)
	}

	code, out, stderr = runCommand(statesCommand(), "--netns", ns.Path, "--by", "port", "--output", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	validateLines(t, "states", out)
	assertSchemaStrict(t, "states", []byte(strings.TrimSpace(out)), "states")
	var r statesReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.Netns != ns.Inode || r.Total != 5 || r.States["ESTABLISHED"] != 4 || r.States["LISTEN"] != 1 ||
		r.States["TIME_WAIT"] != 0 || len(r.States) != 12 || len(r.Hints) != 0 {
		t.Errorf("report %s", out)
	}
	if len(r.Ports) == 0 || r.Ports[0] != (statesPort{uint16(port), "ESTABLISHED", 2}) {
		t.Errorf("ports %+v, want the listener port's 2 ESTABLISHED first", r.Ports)
	}

	code, out, stderr = runCommand(statesCommand(), "--all-netns", "--output", "json")
	if code != 0 {
		t.Fatalf("--all-netns: exit %d: %s", code, stderr)
	}
	found := false
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		validateLine(t, "states", []byte(l))
		var r statesReport
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		found = found || r.Netns == ns.Inode && r.Total == 5
	}
	if !found {
		t.Errorf("--all-netns does not show %s:\n%s", ns, out)
	}
}

// The hints, from real sockets: 100 connections the application does not
// close (CLOSE_WAIT), 100 handshakes whose final ACK a TCP_DEFER_ACCEPT
// listener drops (NEW_SYN_RECV) and 1000 connections a server closed first
// (TIME_WAIT on its port, as without HTTP keep-alive), each on its own port.
func TestKernelStatesHints(t *testing.T) {
	ns := kerneltest.NS(t)
	var keep []io.Closer
	defer func() {
		for _, c := range keep {
			c.Close()
		}
	}()
	th := sockstate.DefaultThresholds
	var cwPort, srPort, twPort int
	err := ns.Do(func() error {
		// With the default tcp_tw_reuse=2, connect on loopback would reuse
		// TIME_WAIT ports. /proc/sys/net is the opening thread's netns.
		if err := os.WriteFile("/proc/sys/net/ipv4/tcp_tw_reuse", []byte("0"), 0o644); err != nil {
			return err
		}
		// pairs listens on a port of its own, makes n connections to it and
		// hands each (client, server) pair to done.
		pairs := func(n int, done func(c, s net.Conn)) (int, error) {
			ln, err := net.Listen("tcp4", "127.0.0.1:0")
			if err != nil {
				return 0, err
			}
			keep = append(keep, ln)
			for range n {
				c, s, err := connected(ln)
				if err != nil {
					return 0, err
				}
				done(c, s)
			}
			return ln.Addr().(*net.TCPAddr).Port, nil
		}
		var err error
		if twPort, err = pairs(th.TimeWait, func(c, s net.Conn) {
			s.Close() // the server closes first: its side goes to TIME_WAIT
			c.Close()
		}); err != nil {
			return err
		}
		if cwPort, err = pairs(th.CloseWait, func(c, s net.Conn) {
			keep = append(keep, s)
			c.Close() // the peer closes, the server side does not
		}); err != nil {
			return err
		}
		lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			if err := rc.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT, 60)
			}); err != nil {
				return err
			}
			return serr
		}}
		dl, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
		if err != nil {
			return err
		}
		keep = append(keep, dl)
		srPort = dl.Addr().(*net.TCPAddr).Port
		for range th.SynRecv {
			c, err := net.Dial("tcp4", dl.Addr().String())
			if err != nil {
				return err
			}
			keep = append(keep, c)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// FIN processing on loopback is asynchronous.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := sockstate.Count(ns)
		if err != nil {
			t.Fatal(err)
		}
		if c.State(sockstate.CloseWait) == th.CloseWait && c.State(sockstate.NewSynRecv) == th.SynRecv &&
			c.Ports[sockstate.PortState{Port: uint16(twPort), State: sockstate.TimeWait}] == th.TimeWait || time.Now().After(deadline) {
			break
		}
	}

	code, out, stderr := runCommand(statesCommand(), "--netns", ns.Name)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		fmt.Sprintf("NEW_SYN_RECV %d", th.SynRecv),
		fmt.Sprintf("CLOSE_WAIT %d", th.CloseWait),
		fmt.Sprintf("FIN_WAIT2 %d", th.CloseWait),
	} {
		found := false
		for _, l := range strings.Split(out, "\n") {
			found = found || strings.Join(strings.Fields(l), " ") == want
		}
		if !found {
			t.Errorf("no row %q:\n%s", want, out)
		}
	}
	for _, want := range []string{
		fmt.Sprintf("hint: %d SYN_RECV+NEW_SYN_RECV (from %d): SYN flood or lost ACKs", th.SynRecv, th.SynRecv),
		fmt.Sprintf("; most on local port %d (%d)\n", srPort, th.SynRecv),
		fmt.Sprintf("hint: %d CLOSE_WAIT (from %d): the application does not close its sockets", th.CloseWait, th.CloseWait),
		fmt.Sprintf("; most on local port %d (%d)\n", cwPort, th.CloseWait),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// A simultaneous close can leave the client side in TIME_WAIT too.
	tw := regexp.MustCompile(`hint: (\d+) TIME_WAIT \(from (\d+)\): connections opened and closed, e.g. no HTTP keep-alive.*; most on local port (\d+) \((\d+)\)\n`).FindStringSubmatch(out)
	if tw == nil || tw[2] != strconv.Itoa(th.TimeWait) || tw[3] != strconv.Itoa(twPort) || tw[4] != strconv.Itoa(th.TimeWait) {
		t.Errorf("TIME_WAIT hint %q, want %d on local port %d:\n%s", tw, th.TimeWait, twPort, out)
	}
}
