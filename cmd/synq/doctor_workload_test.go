package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/synq-trace/synq/internal/aggregate"
	"github.com/synq-trace/synq/internal/identity"
	"github.com/synq-trace/synq/internal/kerneltest"
)

// doctorOwned is a finding's listener as doctor's JSON names it.
type doctorOwned struct {
	Findings []struct {
		Kind     string `json:"kind"`
		Severity string `json:"severity"`
		Listener struct {
			Port     uint16            `json:"port"`
			Process  string            `json:"process"`
			Workload string            `json:"workload"`
			Owners   []aggregate.Owner `json:"owners"`
		} `json:"listener"`
	} `json:"findings"`
}

// doctorWorkload runs doctor (JSON) on the workloads' netns with the CRI
// runtime's socket, overflowing the pod web-0's accept queue for real (its
// sleep never accepts: 64+1 connections fill it, the rest are dropped).
func (w *workloads) doctorWorkload(t *testing.T, extra ...string) (doctorResult, doctorOwned) {
	t.Helper()
	web := fmt.Sprintf("127.0.0.1:%d", w.web.port)
	res := doctorRun(t, w.ns, w.netns, 3*time.Second, func() { dialAll(t, w.ns, web, 90, nil) },
		append([]string{"--runtime-endpoint", w.sock}, extra...)...)
	var owned doctorOwned
	if err := json.Unmarshal([]byte(res.raw), &owned); err != nil {
		t.Fatal(err)
	}
	if res.code != exitFound {
		t.Errorf("exit %d, want %d (found): %s", res.code, exitFound, res.stderr)
	}
	return res, owned
}

// checkWebOverflow: web-0's listener has a not-accepting finding naming
// its pod, whose kernel ListenOverflows is the test's own reading (> 0),
// and whose owners carry the structured identity the CRI runtime gave.
func (w *workloads) checkWebOverflow(t *testing.T, res doctorResult, owned doctorOwned) {
	t.Helper()
	f := res.finding(t, "not-accepting", w.web.port)
	if _, ovf := kernelOf(t, f, "TcpExt.ListenOverflows"); ovf <= 0 || ovf != int64(res.kernel["TcpExt.ListenOverflows"]) {
		t.Errorf("finding's kernel ListenOverflows %d, the test read %d (want equal, > 0)", ovf, res.kernel["TcpExt.ListenOverflows"])
	}
	for _, fd := range owned.Findings {
		if fd.Kind != "not-accepting" || fd.Listener.Port != w.web.port {
			continue
		}
		l := fd.Listener
		if l.Workload != "shop/web-0/nginx" || l.Process != fmt.Sprintf("sleep[%d]", w.web.pid) {
			t.Errorf("web's finding names %q, %q; want shop/web-0/nginx, sleep[%d]", l.Workload, l.Process, w.web.pid)
		}
		if len(l.Owners) != 1 || l.Owners[0].PID != w.web.pid || l.Owners[0].Identity != w.want[w.web.port] {
			t.Errorf("web's owners %+v, want sleep[%d] with %+v", l.Owners, w.web.pid, w.want[w.web.port])
		}
	}
}

// doctor names each listener's workload (text and JSON), the workload
// filters select exactly its findings, and a filter matching nothing exits
// 1 at start in one line.
func TestKernelDoctorWorkload(t *testing.T) {
	kerneltest.Root(t)
	w := startWorkloads(t)

	t.Run("all", func(t *testing.T) {
		res, owned := w.doctorWorkload(t)
		w.checkWebOverflow(t, res, owned)
		named := map[uint16]string{}
		for _, f := range owned.Findings {
			if len(f.Listener.Owners) == 1 && f.Listener.Owners[0].Identity == w.want[f.Listener.Port] {
				named[f.Listener.Port] = f.Listener.Workload
			}
		}
		for _, p := range w.ports() {
			if named[p] != w.display[p] {
				t.Errorf("port %d: doctor names %q, want %q", p, named[p], w.display[p])
			}
		}
	})

	t.Run("pod", func(t *testing.T) {
		res, owned := w.doctorWorkload(t, "--pod", "web-0")
		w.checkWebOverflow(t, res, owned)
		for _, f := range owned.Findings {
			if f.Listener.Port != w.web.port {
				t.Errorf("--pod web-0 reports %s on :%d (%s)", f.Kind, f.Listener.Port, f.Listener.Workload)
			}
		}
	})

	t.Run("text", func(t *testing.T) {
		for _, c := range []struct {
			filter []string
			want   []uint16
		}{{nil, w.ports()}, {[]string{"--unit", w.unit}, []uint16{w.svc.port}}} {
			args := append([]string{"doctor", "--netns", w.netns, "--runtime-endpoint", w.sock, "--duration", "1s"}, c.filter...)
			code, out, stderr := runCLI(args...)
			t.Logf("synq %v: exit %d\n%s", args, code, out)
			if code != 0 && code != exitFound {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			lines := strings.Split(out, "\n")
			for _, p := range w.ports() {
				ep := fmt.Sprintf("127.0.0.1:%d (", p)
				i := slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, ep) })
				switch {
				case !slices.Contains(c.want, p) && i >= 0:
					t.Errorf("%v: a line for unselected :%d: %q", c.filter, p, lines[i])
				case slices.Contains(c.want, p) && (i < 0 || !strings.Contains(lines[i], ", "+w.display[p]+")")):
					t.Errorf("%v: no line for :%d naming %q", c.filter, p, w.display[p])
				}
			}
		}
	})

	t.Run("no match", func(t *testing.T) {
		code, stdout, stderr := runCLI("doctor", "--netns", w.netns, "--runtime-endpoint", w.sock, "--pod", "web-0", "--unit", w.unit)
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		if code != 1 || stdout != "" || len(lines) != 1 || lines[0] != "synq: no listener matches --pod web-0 --unit "+w.unit {
			t.Errorf("exit %d, stdout %q, stderr %q; want exit 1 and one line", code, stdout, stderr)
		}
	})

	t.Run("degraded", func(t *testing.T) {
		absent := filepath.Join(t.TempDir(), "absent.sock")
		code, stdout, stderr := runCLI("doctor", "--netns", w.netns, "--runtime-endpoint", absent, "--duration", "300ms", "-o", "json")
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		var n int
		for _, l := range lines {
			if strings.Contains(l, "identities from cgroup paths alone") {
				n++
			}
		}
		if code == 1 || code == 2 || n != 1 {
			t.Errorf("exit %d, stderr %q; want doctor's verdict and one line about the runtime", code, stderr)
		}
		validateLines(t, "doctor", stdout)
		var owned doctorOwned
		if err := json.Unmarshal([]byte(stdout), &owned); err != nil {
			t.Fatal(err)
		}
		cg := identity.FromCgroup(w.cgroupOf(t, w.web.port))
		found := false
		for _, f := range owned.Findings {
			if f.Listener.Port == w.web.port {
				found = true
				if len(f.Listener.Owners) != 1 || f.Listener.Owners[0].Identity != cg || f.Listener.Workload != cg.Display() {
					t.Errorf("web without the runtime: %q %+v, want %q %+v", f.Listener.Workload, f.Listener.Owners, cg.Display(), cg)
				}
			}
		}
		if !found {
			t.Errorf("no finding for web's :%d in %s", w.web.port, stdout)
		}
	})
}
