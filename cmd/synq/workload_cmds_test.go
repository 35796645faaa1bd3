package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/synq-trace/synq/internal/aggregate"
	"github.com/synq-trace/synq/internal/kerneltest"
)

// run runs a synq command that ends by itself (top --once, --duration),
// connecting once to every listener after it attached; it returns stdout
// and stderr.
func (w *workloads) run(t *testing.T, cmd string, args ...string) (string, string) {
	t.Helper()
	all := append([]string{cmd, "--netns", w.netns, "--runtime-endpoint", w.sock}, args...)
	s := startSynq(all...)
	defer s.cancel()
	s.attached(t)
	w.dial(t)
	s.wait(t, 20*time.Second)
	return s.stdout.String(), s.stderr.String()
}

// checkText checks that each selected listener's line names its workload,
// and that no other listener of the test has a line.
func (w *workloads) checkText(t *testing.T, what, out string, selected []uint16) {
	t.Helper()
	lines := strings.Split(out, "\n")
	for _, p := range w.ports() {
		ep := fmt.Sprintf("127.0.0.1:%d ", p)
		i := slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, ep) })
		switch {
		case !slices.Contains(selected, p) && i >= 0:
			t.Errorf("%s: a line for unselected :%d: %q", what, p, lines[i])
		case slices.Contains(selected, p) && (i < 0 || !strings.Contains(lines[i], w.display[p])):
			t.Errorf("%s: no line for :%d naming %q:\n%s", what, p, w.display[p], out)
		}
	}
}

// checkSelected checks that owners (by port) hold exactly the selected
// listeners, each named.
func (w *workloads) checkSelected(t *testing.T, what string, owners map[uint16][]aggregate.Owner, selected []uint16) {
	t.Helper()
	var got []uint16
	for p := range owners {
		got = append(got, p)
	}
	slices.Sort(got)
	slices.Sort(selected)
	if !slices.Equal(got, selected) {
		t.Errorf("%s: listeners %v, want %v", what, got, selected)
	}
	for _, p := range selected {
		if o := owners[p]; len(o) != 1 || o[0].Identity != w.want[p] {
			t.Errorf("%s: port %d owners %+v, want %+v", what, p, o, w.want[p])
		}
	}
}

// Every listener is named by its workload in top, latency and trace (text
// and JSON); the filters select exactly its rows (and, in trace, its
// events); a filter matching nothing exits 1 at start, in one line.
func TestKernelWorkloadCommands(t *testing.T) {
	kerneltest.Root(t)
	w := startWorkloads(t)
	all := w.ports()

	t.Run("top", func(t *testing.T) {
		for _, c := range []struct {
			filter []string
			want   []uint16
		}{{nil, all}, {[]string{"--pod", "web-0"}, []uint16{w.web.port}}} {
			out, _ := w.run(t, "top", append([]string{"--once", "--interval", "300ms", "-o", "json"}, c.filter...)...)
			fs := parseTopFrames(t, out)
			owners := map[uint16][]aggregate.Owner{}
			for _, r := range fs[len(fs)-1].Rows {
				owners[r.Port] = r.Owners
			}
			w.checkSelected(t, fmt.Sprintf("top %v", c.filter), owners, c.want)
		}
		out, _ := w.run(t, "top", "--once", "--interval", "300ms", "--unit", w.unit)
		w.checkText(t, "top --unit", out, []uint16{w.svc.port})
		out, _ = w.run(t, "top", "--once", "--interval", "300ms")
		w.checkText(t, "top", out, all)
	})

	t.Run("latency", func(t *testing.T) {
		for _, c := range []struct {
			filter []string
			want   []uint16
		}{{nil, all}, {[]string{"--k8s-namespace", "data"}, []uint16{w.db.port}}} {
			out, _ := w.run(t, "latency", append([]string{"--duration", "1s", "-o", "json"}, c.filter...)...)
			owners := map[uint16][]aggregate.Owner{}
			for _, g := range parseLatency(t, out) {
				owners[g.Port] = g.Owners
			}
			w.checkSelected(t, fmt.Sprintf("latency %v", c.filter), owners, c.want)
		}
		out, _ := w.run(t, "latency", "--duration", "1s")
		w.checkText(t, "latency", out, all)
	})

	t.Run("trace", func(t *testing.T) {
		for _, c := range []struct {
			filter []string
			want   []uint16
		}{{nil, all}, {[]string{"--container", "nginx"}, []uint16{w.web.port}}} {
			out, _ := w.run(t, "trace", append([]string{"--duration", "1s", "-o", "json"}, c.filter...)...)
			validateLines(t, "trace", out)
			owners := map[uint16][]aggregate.Owner{}
			events := map[uint16]int{}
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				var l struct {
					Port      uint16           `json:"port"`
					Workload  string           `json:"workload"`
					Owner     *aggregate.Owner `json:"owner"`
					Reconcile *struct {
						Netns []struct {
							NetnsName string `json:"netns_name"`
							Listeners []struct {
								Port   uint16            `json:"port"`
								Owners []aggregate.Owner `json:"owners"`
							} `json:"listeners"`
						} `json:"netns"`
					} `json:"reconcile"`
				}
				if err := json.Unmarshal([]byte(line), &l); err != nil {
					t.Fatalf("not JSON: %q", line)
				}
				if l.Reconcile == nil {
					events[l.Port]++
					// Every listener was there before trace started: each
					// event names its workload.
					if l.Workload != w.display[l.Port] || l.Owner == nil || l.Owner.Identity != w.want[l.Port] || l.Owner.Cgroup == "" || l.Owner.PID == 0 {
						t.Errorf("trace %v: an event on :%d names workload %q, owner %+v; want %q, %+v", c.filter, l.Port, l.Workload, l.Owner, w.display[l.Port], w.want[l.Port])
					}
					continue
				}
				for _, n := range l.Reconcile.Netns {
					for _, ln := range n.Listeners {
						if n.NetnsName == w.netns {
							owners[ln.Port] = ln.Owners
						}
					}
				}
			}
			w.checkSelected(t, fmt.Sprintf("trace's reconcile %v", c.filter), owners, c.want)
			var ports []uint16
			for p := range events {
				ports = append(ports, p)
			}
			slices.Sort(ports)
			if !slices.Equal(ports, c.want) {
				t.Errorf("trace %v: events on %v, want %v", c.filter, ports, c.want)
			}
		}
		stdout, stderr := w.run(t, "trace", "--duration", "1s")
		w.checkText(t, "trace's exit table", stderr, all)
		// Each event line ends with its listener's workload.
		for _, line := range strings.Split(strings.TrimSpace(stdout), "\n")[1:] {
			for _, p := range all {
				if strings.Contains(line, fmt.Sprintf("127.0.0.1:%d ", p)) && !strings.HasSuffix(line, " workload="+w.display[p]) {
					t.Errorf("trace: event line on :%d does not end with workload=%s: %q", p, w.display[p], line)
				}
			}
		}
	})

	t.Run("no match", func(t *testing.T) {
		for _, cmd := range []string{"top", "latency", "trace"} {
			code, stdout, stderr := runCLI(cmd, "--netns", w.netns, "--runtime-endpoint", w.sock, "--pod", "web-0", "--unit", w.unit)
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if code != 1 || stdout != "" || len(lines) != 1 || lines[0] != "synq: no listener matches --pod web-0 --unit "+w.unit {
				t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 1 and one line", cmd, code, stdout, stderr)
			}
		}
	})
}
