package netstat_test

// An external test: kerneltest builds on netlab, which parses with netstat.

import (
	"net"
	"testing"

	"github.com/synq-trace/synq/internal/kerneltest"
	"github.com/synq-trace/synq/internal/netns"
	"github.com/synq-trace/synq/internal/netstat"
)

// dialOnce accepts one loopback connection inside ns and closes it.
func dialOnce(t *testing.T, ns netns.NS) {
	t.Helper()
	var ln net.Listener
	var c net.Conn
	err := ns.Do(func() error {
		var err error
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return err
		}
		// The socket is created here, on the locked thread, so it lives
		// in ns even though connect completes later.
		c, err = net.Dial("tcp", ln.Addr().String())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	defer c.Close()
	s, err := ln.Accept() // child created: PassiveOpens counted
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

func TestKernelReadNetns(t *testing.T) {
	ns := kerneltest.NS(t)
	bystander := kerneltest.NS(t)

	keys := []string{"Tcp.ActiveOpens", "Tcp.PassiveOpens"}
	before, err := netstat.ReadNetns(ns)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if before[k] != 0 {
			t.Errorf("fresh netns %s = %d, want 0", k, before[k])
		}
	}
	otherBefore, err := netstat.ReadNetns(bystander)
	if err != nil {
		t.Fatal(err)
	}

	// Other tests on this machine open connections in the host netns, so
	// look for one quiet window to prove ours did not count there.
	hostQuiet := false
	for attempt := 1; attempt <= 5; attempt++ {
		hostBefore, err := netstat.Read("/proc/net")
		if err != nil {
			t.Fatal(err)
		}
		dialOnce(t, ns)
		hostAfter, err := netstat.Read("/proc/net")
		if err != nil {
			t.Fatal(err)
		}
		after, err := netstat.ReadNetns(ns)
		if err != nil {
			t.Fatal(err)
		}
		d := netstat.Delta(before, after)
		for _, k := range keys {
			if d[k] != 1 {
				t.Fatalf("attempt %d: %s rose by %d in the netns, want 1", attempt, k, d[k])
			}
		}
		before = after
		hd := netstat.Delta(hostBefore, hostAfter)
		if hd["Tcp.ActiveOpens"] == 0 && hd["Tcp.PassiveOpens"] == 0 {
			hostQuiet = true
			break
		}
		t.Logf("attempt %d: host netns busy (ActiveOpens +%d, PassiveOpens +%d), retrying",
			attempt, hd["Tcp.ActiveOpens"], hd["Tcp.PassiveOpens"])
	}
	if !hostQuiet {
		t.Log("host netns never quiet; isolation is still proven by the bystander netns")
	}

	otherAfter, err := netstat.ReadNetns(bystander)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if otherAfter[k] != otherBefore[k] {
			t.Errorf("bystander netns %s moved %d -> %d", k, otherBefore[k], otherAfter[k])
		}
	}
}
