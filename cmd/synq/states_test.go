package main

import (
	"encoding/json"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/synq-trace/synq/internal/netns/netnstest"
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

func TestStatesPrivileged(t *testing.T) {
	ns := netnstest.New(t)
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
			c, err := net.Dial("tcp4", ln.Addr().String())
			if err != nil {
				return err
			}
			s, err := ln.Accept()
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
