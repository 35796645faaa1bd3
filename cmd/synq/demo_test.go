package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/synq-trace/synq/internal/kerneltest"
)

// In tests the demo's server processes are this test binary as synq.
func init() { demoServerViaEnv = true }

// #17: the demo's servers are processes of their own (the kernel's comm on
// every accept is demo-slow or demo-healthy, never synq's), the event stream
// is there only with --trace, and stdout ends with the per-listener table,
// the servers' accepts and the reconciliation.
func TestKernelDemoOwnProcesses(t *testing.T) {
	kerneltest.Root(t)
	code, out, stderr := runCLI("demo", "--duration", "3s", "--trace", "-o", "json")
	if code != 0 {
		t.Fatalf("demo --trace -o json: exit %d: %s", code, stderr)
	}
	comms := map[string]int{}
	for _, line := range strings.Split(out, "\n") {
		var ev struct {
			Kind string `json:"kind"`
			Port int    `json:"port"`
			Comm string `json:"comm"`
		}
		if json.Unmarshal([]byte(line), &ev) != nil || ev.Kind != "accept" {
			continue
		}
		comms[ev.Comm]++
		if want := map[int]string{8080: "demo-slow", 8081: "demo-healthy"}[ev.Port]; ev.Comm != want {
			t.Errorf("accept on port %d by comm %q, want %q", ev.Port, ev.Comm, want)
		}
	}
	t.Logf("accepts by comm: %v", comms)
	if comms["demo-slow"] == 0 || comms["demo-healthy"] == 0 {
		t.Errorf("accepts by comm %v: want both demo servers", comms)
	}

	code, out, stderr = runCLI("demo", "--duration", "2s")
	if code != 0 {
		t.Fatalf("demo: exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 6 || !strings.HasPrefix(lines[0], "LISTENER ") || !strings.Contains(out, "127.0.0.1:8080") ||
		!strings.Contains(out, "The servers accepted: demo-slow ") || !strings.Contains(out, "reconcile on exit") ||
		!strings.Contains(out, "ListenDrops") {
		t.Errorf("demo stdout: want the listener table, the accepts and the reconciliation:\n%s", out)
	}
	if regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d\.\d+ +(accept|enqueue|ack-overflow) `).MatchString(out) {
		t.Errorf("demo without --trace printed events:\n%s", out)
	}
}
