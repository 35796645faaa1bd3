package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/synq-trace/synq/internal/kerneltest"
	"github.com/synq-trace/synq/internal/netlab"
)

// doctorResult is one synq doctor run: its exit status, its JSON and the
// netns's own counters over the test's traffic.
type doctorResult struct {
	code   int
	report doctorReport
	raw    string
	stderr string
	kernel netlab.Counters // the netns's counters: after the run minus before the traffic
}

// doctorReport mirrors docs/schema/doctor.json (render.DoctorJSON), to
// read the findings back.
type doctorReport struct {
	Found    bool            `json:"found"`
	Tier     string          `json:"tier"`
	Findings []doctorFinding `json:"findings"`
}

type doctorFinding = struct {
	Kind     string `json:"kind"`
	Severity string `json:"severity"`
	Listener struct {
		Port    uint16 `json:"port"`
		Process string `json:"process"`
	} `json:"listener"`
	Title    string `json:"title"`
	Evidence []struct {
		What    string  `json:"what"`
		Synq    *uint64 `json:"synq"`
		Counter string  `json:"counter"`
		Kernel  *int64  `json:"kernel"`
	} `json:"evidence"`
	Limit    string `json:"limit"`
	Action   string `json:"action"`
	Inferred string `json:"inferred"`
}

// doctorRun runs synq doctor (JSON) on the netns name for d, with the
// test's traffic made by during once it has attached; the traffic must be
// over when during returns.
func doctorRun(t *testing.T, ns *netlab.Netns, name string, d time.Duration, during func(), extra ...string) doctorResult {
	t.Helper()
	args := append([]string{"doctor", "--netns", name, "--duration", d.String(), "--output", "json"}, extra...)
	r := startSynq(args...)
	r.attached(t)
	c0, err := ns.Counters()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	during()
	if time.Since(start) >= d {
		t.Fatalf("the traffic took %s, longer than doctor's window %s", time.Since(start), d)
	}
	var res doctorResult
	select {
	case res.code = <-r.done:
	case <-time.After(d + 30*time.Second):
		r.cancel()
		t.Fatalf("synq doctor still running after %s", d+30*time.Second)
	}
	c1, err := ns.Counters()
	if err != nil {
		t.Fatal(err)
	}
	res.kernel = c1.Sub(c0)
	res.raw, res.stderr = r.stdout.String(), r.stderr.String()
	validateLines(t, "doctor", res.raw)
	if err := json.Unmarshal([]byte(res.raw), &res.report); err != nil {
		t.Fatalf("doctor JSON: %v\n%s", err, res.raw)
	}
	t.Logf("synq doctor: exit %d\n%s", res.code, res.raw)
	return res
}

// finding is the finding of kind about port; it fails the test if none.
func (res *doctorResult) finding(t *testing.T, kind string, port uint16) doctorFinding {
	t.Helper()
	for _, f := range res.report.Findings {
		if f.Kind == kind && f.Listener.Port == port {
			return f
		}
	}
	t.Fatalf("no %s finding for port %d in %s", kind, port, res.raw)
	return doctorFinding{}
}

// kernelOf is the finding's evidence of the kernel's counter (must be there).
func kernelOf(t *testing.T, f doctorFinding, counter string) (synq *uint64, kernel int64) {
	t.Helper()
	for _, e := range f.Evidence {
		if e.Counter == counter {
			if e.Kernel == nil {
				t.Fatalf("%s finding: kernel %s not read", f.Kind, counter)
			}
			return e.Synq, *e.Kernel
		}
	}
	t.Fatalf("%s finding has no %s evidence", f.Kind, counter)
	return nil, 0
}

// synqOf sums the synq numbers of the evidence whose text contains what.
func synqOf(f doctorFinding, what string) (n uint64, ok bool) {
	for _, e := range f.Evidence {
		if strings.Contains(e.What, what) && e.Synq != nil {
			n += *e.Synq
			ok = true
		}
	}
	return n, ok
}

func doctorNetns(t *testing.T, prefix string) (string, *netlab.Netns) {
	t.Helper()
	name := fmt.Sprintf("%s-%d", prefix, os.Getpid())
	return name, kerneltest.NamedNetns(t, name)
}

// checkOverflowEvidence: synq's overflows and drops are the netns's
// ListenOverflows and ListenDrops over the window, which are the test's own
// reading of them.
func checkOverflowEvidence(t *testing.T, res doctorResult, f doctorFinding) {
	t.Helper()
	_, ovf := kernelOf(t, f, "TcpExt.ListenOverflows")
	drops, ld := kernelOf(t, f, "TcpExt.ListenDrops")
	if ovf != int64(res.kernel["TcpExt.ListenOverflows"]) || ld != int64(res.kernel["TcpExt.ListenDrops"]) {
		t.Errorf("doctor's kernel ListenOverflows %d, ListenDrops %d; the test read %d, %d", ovf, ld,
			res.kernel["TcpExt.ListenOverflows"], res.kernel["TcpExt.ListenDrops"])
	}
	if ovf <= 0 {
		t.Fatalf("no overflow in the kernel's counters: the test did not overflow the queue")
	}
	if drops == nil || int64(*drops) != ld {
		t.Errorf("synq's drops %v, the kernel's ListenDrops %d", drops, ld)
	}
	if n, ok := synqOf(f, "on a full accept queue"); !ok || int64(n) != ovf {
		t.Errorf("synq's accept-queue overflows %d (%v), the kernel's ListenOverflows %d", n, ok, ovf)
	}
}

// dialAll makes n connections to l from inside ns, all at once, and closes
// them (RST) once then has run.
func dialAll(t *testing.T, ns *netlab.Netns, l string, n int, then func()) *netlab.DialResult {
	t.Helper()
	res, err := ns.DialMany(t.Context(), l, n, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if then != nil {
		then()
	}
	res.Close()
	return res
}

// closeWaitConns makes n connections to addr from inside ns and closes
// them with a FIN: the server side, which keeps them, is left in
// CLOSE_WAIT.
func closeWaitConns(t *testing.T, ns *netlab.Netns, addr string, n int) {
	t.Helper()
	var conns []net.Conn
	err := ns.Do(func() error {
		for range n {
			c, err := net.Dial("tcp4", addr)
			if err != nil {
				return err
			}
			conns = append(conns, c)
		}
		return nil
	})
	for _, c := range conns {
		c.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
}
