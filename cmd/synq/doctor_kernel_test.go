package main

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/synq-trace/synq/internal/hardening"
	"github.com/synq-trace/synq/internal/kerneltest"
	"github.com/synq-trace/synq/internal/netlab"
	"github.com/synq-trace/synq/internal/sockstate"
)

// Finding 2: the netns's somaxconn (8) below the backlog the application
// asked for (64) caps the accept queue; the queue overflows while the
// application accepts: raise both.
func TestKernelDoctorSomaxconnCaps(t *testing.T) {
	kerneltest.Root(t)
	name, ns := doctorNetns(t, "synq-doc-som")
	if err := ns.Sysctl("net.core.somaxconn", "8"); err != nil {
		t.Fatal(err)
	}
	l := kerneltest.Listen(t, ns, "tcp4", "127.0.0.1:0", 64)
	res := doctorRun(t, ns, name, 4*time.Second, func() {
		dialAll(t, ns, l.String(), 40, func() {
			if err := l.WaitQueue(9, time.Second); err != nil {
				t.Fatal(err)
			}
			s := netlab.Serve(l, netlab.ServerConfig{Keep: true})
			t.Cleanup(s.Stop)
			if !s.WaitAccepts(9, 2*time.Second) {
				t.Fatalf("accepted %d of the queued 9", s.Accepts())
			}
		})
	}, "--port", strconv.Itoa(int(l.Port())))
	if res.code != exitFound {
		t.Errorf("exit %d, want %d (found)", res.code, exitFound)
	}
	f := res.finding(t, "somaxconn", l.Port())
	checkOverflowEvidence(t, res, f)
	som, err := ns.ReadSysctl("net.core.somaxconn")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"net.core.somaxconn " + strings.TrimSpace(som)} {
		if !strings.Contains(f.Limit, want) {
			t.Errorf("limit %q does not say %q", f.Limit, want)
		}
	}
	if !strings.Contains(f.Action, "sysctl -w net.core.somaxconn=") || !strings.Contains(f.Action, "raise both") {
		t.Errorf("action %q: want raising somaxconn and the backlog", f.Action)
	}
}

// Finding 3: a server stopped with SIGSTOP: the queue fills, nothing is
// accepted, and the process's state from /proc says why.
func TestKernelDoctorStoppedServer(t *testing.T) {
	kerneltest.Root(t)
	name, ns := doctorNetns(t, "synq-doc-stop")
	l := kerneltest.Listen(t, ns, "tcp4", "127.0.0.1:0", 8)
	file, err := l.TCPListener().File()
	if err != nil {
		t.Fatal(err)
	}
	// The server is a process of its own holding the socket: sleep, which
	// never accepts; stopped, it is the stuck server of the finding.
	srv := exec.Command("sleep", "600")
	srv.ExtraFiles = []*os.File{file}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	file.Close()
	l.Close()
	pid := srv.Process.Pid
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitState(t, pid, "T")
	res := doctorRun(t, ns, name, 3*time.Second, func() { dialAll(t, ns, l.String(), 32, nil) }, "--port", strconv.Itoa(int(l.Port())))
	if res.code != exitFound {
		t.Errorf("exit %d, want %d", res.code, exitFound)
	}
	f := res.finding(t, "not-accepting", l.Port())
	checkOverflowEvidence(t, res, f)
	if n, ok := synqOf(f, "connections accepted"); !ok || n != 0 {
		t.Errorf("accepted %d (%v), want 0 from a stopped server", n, ok)
	}
	if !strings.Contains(f.Action, fmt.Sprintf("sleep[%d] is stopped", pid)) || !strings.Contains(f.Action, fmt.Sprintf("kill -CONT %d", pid)) {
		t.Errorf("action %q: want sleep[%d] stopped, kill -CONT", f.Action, pid)
	}
	if !strings.Contains(res.raw, fmt.Sprintf("sleep[%d] stopped (T)", pid)) {
		t.Errorf("no process state stopped (T) for sleep[%d] in the evidence", pid)
	}
	if slicesHasKind(res, "app-backlog", l.Port()) || slicesHasKind(res, "somaxconn", l.Port()) {
		t.Errorf("a stuck server is not a queue too small: %s", res.raw)
	}
}

func slicesHasKind(res doctorResult, kind string, port uint16) bool {
	for _, f := range res.report.Findings {
		if f.Kind == kind && f.Listener.Port == port {
			return true
		}
	}
	return false
}

// waitState waits until /proc says pid is in state.
func waitState(t *testing.T, pid int, state string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		if f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]); len(f) > 0 && f[0] == state {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d not in state %s: %s", pid, state, s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Finding 4: a SYN flood from sources that never answer, syncookies 0: the
// SYN queue fills and SYNs are dropped (TCPReqQFullDrop); with 1 the
// kernel sends cookies instead.
func TestKernelDoctorSynQueue(t *testing.T) {
	kerneltest.Root(t)
	for _, cookies := range []string{"0", "1"} {
		t.Run("syncookies="+cookies, func(t *testing.T) {
			src := netip.MustParsePrefix("10.66.0.0/16")
			name := fmt.Sprintf("synq-doc-syn%s-%d", cookies, os.Getpid())
			ns, l, fl := floodNetns(t, name, 16, cookies, src, hardening.Blackhole)
			// 6s: the SYN-ACK retransmits of the flood come 1 s and 3 s
			// after it, the next at 7 s: none lands near the end.
			res := doctorRun(t, ns, name, 6*time.Second, func() {
				if _, err := fl.Send(l.Addr(), 300); err != nil {
					t.Fatal(err)
				}
			}, "--port", strconv.Itoa(int(l.Port())))
			if res.code != exitFound {
				t.Errorf("exit %d, want %d", res.code, exitFound)
			}
			k := res.kernel
			if cookies == "0" {
				f := res.finding(t, "syn-queue-full", l.Port())
				synq, kern := kernelOf(t, f, "TcpExt.TCPReqQFullDrop")
				if kern <= 0 || kern != int64(k["TcpExt.TCPReqQFullDrop"]) {
					t.Errorf("doctor's TCPReqQFullDrop %d, the test read %d", kern, k["TcpExt.TCPReqQFullDrop"])
				}
				if synq == nil || int64(*synq) != kern {
					t.Errorf("synq's SYN-queue-full drops %v, the kernel's TCPReqQFullDrop %d", synq, kern)
				}
				if !strings.Contains(f.Action, "tcp_syncookies=1") {
					t.Errorf("action %q: want enabling SYN cookies", f.Action)
				}
			} else {
				f := res.finding(t, "syn-cookies", l.Port())
				_, kern := kernelOf(t, f, "TcpExt.SyncookiesSent")
				if kern <= 0 || kern != int64(k["TcpExt.SyncookiesSent"]) {
					t.Errorf("doctor's SyncookiesSent %d, the test read %d", kern, k["TcpExt.SyncookiesSent"])
				}
				if !strings.Contains(f.Action, "flood") {
					t.Errorf("action %q: want the flood or backlog advice", f.Action)
				}
			}
			// Nobody answers a SYN-ACK: every retransmit in the netns is
			// the listener's (the flooder's raw socket retransmits none).
			if rtx := k["TcpExt.TCPSynRetrans"]; rtx >= 10 {
				f := res.finding(t, "synack-retransmits", l.Port())
				synq, kern := kernelOf(t, f, "TcpExt.TCPSynRetrans")
				if kern != int64(rtx) || synq == nil || *synq != rtx {
					t.Errorf("SYN-ACK retransmits: synq %v, doctor's kernel %d, the test's %d", synq, kern, rtx)
				}
			}
		})
	}
}

// Finding 6 and 7: a listener whose application keeps connections its
// clients closed (CLOSE_WAIT pile), beside a healthy one that must get one
// line and no finding; exit 3, and 0 for the healthy one alone.
func TestKernelDoctorCloseWaitAndHealthy(t *testing.T) {
	kerneltest.Root(t)
	name, ns := doctorNetns(t, "synq-doc-cw")
	healthy := kerneltest.Listen(t, ns, "tcp4", "127.0.0.1:0", 128)
	cw := kerneltest.Listen(t, ns, "tcp4", "127.0.0.1:0", 512)
	hs := netlab.Serve(healthy, netlab.ServerConfig{})
	t.Cleanup(hs.Stop)
	cs := netlab.Serve(cw, netlab.ServerConfig{Keep: true})
	t.Cleanup(cs.Stop)
	n := sockstate.DefaultThresholds.CloseWait + 5
	res := doctorRun(t, ns, name, 3*time.Second, func() {
		dialAll(t, ns, healthy.String(), 5, func() {
			if !hs.WaitAccepts(5, 2*time.Second) {
				t.Fatalf("healthy listener accepted %d of 5", hs.Accepts())
			}
		})
		closeWaitConns(t, ns, cw.String(), n)
		if !cs.WaitAccepts(int64(n), 2*time.Second) {
			t.Fatalf("accepted %d of %d", cs.Accepts(), n)
		}
	})
	if res.code != exitFound {
		t.Errorf("exit %d, want %d", res.code, exitFound)
	}
	f := res.finding(t, "close-wait", cw.Port())
	if got, ok := synqOf(f, "CLOSE_WAIT sockets"); !ok || got != uint64(n) {
		t.Errorf("CLOSE_WAIT %d, the test left %d", got, n)
	}
	var hf []doctorFinding
	for _, f := range res.report.Findings {
		if f.Listener.Port == healthy.Port() {
			hf = append(hf, f)
		}
	}
	if len(hf) != 1 || hf[0].Kind != "healthy" || hf[0].Severity != "ok" {
		t.Errorf("healthy listener: %+v, want one healthy finding", hf)
	}
	if res.kernel["TcpExt.ListenDrops"] != 0 {
		t.Errorf("the kernel counted %d ListenDrops: the healthy run was not healthy", res.kernel["TcpExt.ListenDrops"])
	}

	// The healthy listener alone, as text: one line, exit 0.
	r := startSynq("doctor", "--netns", name, "--port", strconv.Itoa(int(healthy.Port())), "--duration", "500ms")
	r.attached(t)
	code := <-r.done
	out := r.stdout.String()
	t.Logf("%s", out)
	if code != 0 {
		t.Errorf("healthy alone: exit %d, want 0: %s", code, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[1], "OK") || !strings.Contains(lines[1], "nothing seen") ||
		!strings.Contains(lines[1], fmt.Sprintf(":%d ", healthy.Port())) {
		t.Errorf("healthy alone: want the header and one OK line, got\n%s", out)
	}
}

func TestDoctorBadInput(t *testing.T) {
	checkUsage(t, doctorCommand, map[string]string{
		"--duration 1ms":     "invalid --duration 1ms",
		"--port 0":           "invalid --port 0",
		"--output yaml":      `unknown output "yaml"`,
		"--netns no-such-ns": `netns "no-such-ns" does not exist`,
		"extra":              "doctor takes no arguments",
	})
}

// Finding 5: SYNs whose SYN-ACK has no route are dropped with room in the
// queues: ListenDrops beyond ListenOverflows + TCPReqQFullDrop. On the
// tracepoint tier the reason comes from the netns's counters, and the
// finding says so.
func TestKernelDoctorDropsNotFullQueue(t *testing.T) {
	kerneltest.Root(t)
	src := netip.MustParsePrefix("10.67.0.0/16")
	name := fmt.Sprintf("synq-doc-unr-%d", os.Getpid())
	ns, l, fl := floodNetns(t, name, 64, "1", src, hardening.Unroutable)
	res := doctorRun(t, ns, name, 3*time.Second, func() {
		if _, err := fl.Send(l.Addr(), 200); err != nil {
			t.Fatal(err)
		}
	}, "--port", strconv.Itoa(int(l.Port())))
	if res.code != exitFound {
		t.Errorf("exit %d, want %d", res.code, exitFound)
	}
	f := res.finding(t, "drops-not-full-queue", l.Port())
	k := res.kernel
	want := int64(k["TcpExt.ListenDrops"]) - int64(k["TcpExt.ListenOverflows"]) - int64(k["TcpExt.TCPReqQFullDrop"])
	if want <= 0 {
		t.Fatalf("the kernel counted no drop beyond the queues: %v", k)
	}
	_, kern := kernelOf(t, f, "TcpExt.ListenDrops")
	if kern != want {
		t.Errorf("doctor's netns drops beyond the queues %d, the test's %d", kern, want)
	}
	if n, ok := synqOf(f, "SYNs dropped with room"); ok && int64(n) != want {
		t.Errorf("synq's SYN drops with room %d, the kernel's %d", n, want)
	}
	if res.report.Tier == "tracepoint" && !strings.Contains(f.Inferred, "netns") {
		t.Errorf("on the tracepoint tier the finding must say the reason is inferred from the netns's counters: %q", f.Inferred)
	}
}

// Ctrl-C ends the window early: doctor diagnoses what it saw, detaches
// and exits with the status of its findings.
func TestKernelDoctorInterrupted(t *testing.T) {
	kerneltest.Root(t)
	name, ns := doctorNetns(t, "synq-doc-int")
	l := kerneltest.Listen(t, ns, "tcp4", "127.0.0.1:0", 64)
	r := startSynq("doctor", "--netns", name, "--duration", "10m")
	r.attached(t)
	r.cancel()
	select {
	case code := <-r.done:
		if code != 0 {
			t.Errorf("exit %d after Ctrl-C on a healthy listener, want 0: %s", code, r.stderr)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("synq doctor did not end on Ctrl-C")
	}
	if out := r.stdout.String(); !strings.Contains(out, fmt.Sprintf("OK        127.0.0.1:%d ", l.Port())) {
		t.Errorf("no healthy line for the listener after Ctrl-C:\n%s", out)
	}
}
