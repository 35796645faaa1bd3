package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/synq-trace/synq/internal/kerneltest"
)

// The test binary doubles as synq when kerneltest.Synq starts it, so tests
// can run it in another process under other credentials.
func TestMain(m *testing.M) {
	if args, ok := kerneltest.MainArgs(); ok {
		os.Exit(run(append([]string{"synq"}, args...)))
	}
	if n, err := strconv.Atoi(os.Getenv("SYNQ_TEST_WORKER")); err == nil {
		os.Exit(acceptWorker(n))
	}
	os.Exit(m.Run())
}

// Without CAP_BPF and CAP_PERFMON synq says which capabilities it needs, in
// one line, and exits 1.
func TestMissingCapabilities(t *testing.T) {
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) not installed")
	}
	for _, args := range []string{"trace --duration 1s", "listeners"} {
		t.Run(args, func(t *testing.T) {
			// Root without any capability: the bounding set is emptied
			// before exec, so nothing is regained.
			cmd := kerneltest.Synq(args, setpriv, "--inh-caps=-all", "--bounding-set=-all")
			out, err := cmd.CombinedOutput()
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != 1 {
				t.Fatalf("exit %v, want 1; output %q", err, out)
			}
			s := strings.TrimSpace(string(out))
			if strings.Contains(s, "\n") || !strings.Contains(s, "CAP_BPF") || !strings.Contains(s, "CAP_PERFMON") {
				t.Errorf("output %q: want one line naming CAP_BPF and CAP_PERFMON", s)
			}
		})
	}
}

// minimalCaps is the capability set `synq trace` needs, measured on Linux
// 6.18 (tracepoint tier) by running it as uid 0 with only these in its
// bounding set: the bpf(2) program loads and attaches need CAP_BPF, tracing
// programs and perf events CAP_PERFMON. Nothing else is needed to trace
// (BPF memory is charged to the memory cgroup, not RLIMIT_MEMLOCK, since
// 5.11). Optional, each tested below for what it adds: CAP_SYSLOG (kernel
// addresses in /proc/kallsyms: exact per-listener ListenDrops on the
// tracepoint tier) and CAP_SYS_ADMIN (setns(2): reconciling another netns).
var minimalCaps = []string{"CAP_BPF", "CAP_PERFMON"}

type capRun struct {
	code           int
	stdout, stderr string
}

// runWithCaps runs the test binary as synq (TestMain) as uid 0 with exactly
// caps: setpriv empties the inheritable set and cuts the bounding set to
// caps, so what root gets back at exec is caps and nothing else. attached,
// if not nil, runs once synq says it has attached.
func runWithCaps(t *testing.T, caps []string, args string, attached func()) capRun {
	t.Helper()
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) not installed")
	}
	bounding := "-all"
	for _, c := range caps {
		bounding += ",+" + strings.ToLower(strings.TrimPrefix(c, "CAP_"))
	}
	p := kerneltest.Start(t, kerneltest.Synq(args, setpriv, "--inh-caps=-all", "--bounding-set="+bounding))
	if attached != nil && p.Attached(t, 30*time.Second) {
		attached()
	}
	code := p.Wait(t, 30*time.Second)
	return capRun{code, p.Stdout.String(), p.Stderr.String()}
}

func without(caps []string, c string) []string {
	var out []string
	for _, x := range caps {
		if x != c {
			out = append(out, x)
		}
	}
	return out
}

// synq traces with exactly minimalCaps, and with any one of them missing
// says which, in one line, and exits 1. What each optional capability adds
// is tested too, so the README's and deploy/'s lists stay measured facts.
func TestKernelMinimalCapabilities(t *testing.T) {
	ns := kerneltest.NamedNetns(t, "synq-caps-test")
	l := kerneltest.Listen(t, ns, "tcp4", "127.0.0.1:0", 16)
	// Three handshakes once synq has attached: enqueue events, proof that
	// the programs really run, not just load.
	dial := func() {
		res, err := ns.DialMany(context.Background(), l.Addr().String(), 3, 2*time.Second)
		if err != nil {
			t.Errorf("dial: %v", err)
			return
		}
		time.Sleep(300 * time.Millisecond)
		res.Close()
	}
	args := fmt.Sprintf("trace --verbose --output json --netns %s --port %d --duration 3s", ns.Name(), l.Port())
	enqueues := func(stdout string) int {
		return strings.Count(stdout, `"kind":"enqueue"`)
	}

	minimal := runWithCaps(t, minimalCaps, args, dial)
	t.Logf("with %v: exit %d, stderr:\n%s", minimalCaps, minimal.code, minimal.stderr)
	if minimal.code != 0 || enqueues(minimal.stdout) != 3 {
		t.Fatalf("with exactly %v: exit %d, %d enqueue events (want 0 and 3); stdout %q",
			minimalCaps, minimal.code, enqueues(minimal.stdout), minimal.stdout)
	}
	// Reconciling the --netns needs setns(2): synq goes on and says why not.
	if !strings.Contains(minimal.stderr, "no reconciliation") || !strings.Contains(minimal.stderr, "needs CAP_SYS_ADMIN") {
		t.Errorf("without CAP_SYS_ADMIN: want a line saying reconciling the netns needs it; stderr %q", minimal.stderr)
	}

	for _, c := range minimalCaps {
		t.Run("without "+c, func(t *testing.T) {
			r := runWithCaps(t, without(minimalCaps, c), args, nil)
			s := strings.TrimSpace(r.stderr)
			if r.code != 1 {
				t.Errorf("exit %d, want 1; stderr %q", r.code, s)
			}
			if strings.Contains(s, "\n") || !strings.HasPrefix(s, "synq: missing privileges") ||
				!strings.Contains(s, "missing ["+c+"]") {
				t.Errorf("stderr %q: want one line \"synq: missing privileges: ... missing [%s]\"", s, c)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
		})
	}

	t.Run("plus CAP_SYS_ADMIN", func(t *testing.T) {
		r := runWithCaps(t, append(slices.Clone(minimalCaps), "CAP_SYS_ADMIN"), args, dial)
		if r.code != 0 || enqueues(r.stdout) != 3 {
			t.Fatalf("exit %d, %d enqueue events; stderr %q", r.code, enqueues(r.stdout), r.stderr)
		}
		if strings.Contains(r.stderr, "no reconciliation") || !strings.Contains(r.stdout, `{"reconcile":`) {
			t.Errorf("with CAP_SYS_ADMIN the netns is reconciled; stderr %q", r.stderr)
		}
	})

	t.Run("plus CAP_SYSLOG", func(t *testing.T) {
		// Only where the kernel allows exact drops at all (tracepoint tier
		// with kfree_skb's rx_sk, 6.11+): then they need CAP_SYSLOG.
		const approx = "per-listener ListenDrops are approximated"
		if !strings.Contains(minimal.stderr, "tracepoint tier on") {
			t.Skip("not the tracepoint tier: drops are exact without kallsyms")
		}
		r := runWithCaps(t, append(slices.Clone(minimalCaps), "CAP_SYSLOG"), args, nil)
		if r.code != 0 {
			t.Fatalf("exit %d; stderr %q", r.code, r.stderr)
		}
		if strings.Contains(r.stderr, approx) {
			t.Skipf("approximated even with CAP_SYSLOG (kernel before 6.11): %q", r.stderr)
		}
		if !strings.Contains(minimal.stderr, approx) || !strings.Contains(minimal.stderr, "readable kallsyms") {
			t.Errorf("without CAP_SYSLOG synq must say ListenDrops are approximated (kallsyms unreadable); stderr %q", minimal.stderr)
		}
	})
}

// A tier the kernel refuses, forced with --tier: one line naming the tier
// and the kernel's reason, exit 1 (tracer.Open used to panic releasing
// what it had built).
func TestKernelForcedTierRefused(t *testing.T) {
	kerneltest.Root(t)
	refused := 0
	for _, tier := range []string{"fentry", "kprobe"} {
		cmd := kerneltest.Synq("trace --tier " + tier + " --duration 200ms")
		out, err := cmd.CombinedOutput()
		if err == nil {
			continue // this kernel allows it
		}
		refused++
		s := strings.TrimSpace(string(out))
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 1 || strings.Contains(s, "\n") || !strings.Contains(s, "tier "+tier) {
			t.Errorf("--tier %s refused: exit %v, output %q; want one line naming the tier, exit 1", tier, err, s)
		}
	}
	if refused == 0 {
		t.Skip("this kernel allows every tier")
	}
}
