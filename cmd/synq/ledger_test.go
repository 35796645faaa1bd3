package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/synq-trace/synq/internal/kerneltest"
	"github.com/synq-trace/synq/internal/netlab"
)

// sumOf sums the samples of a metric whose label has this value.
func sumOf(ss []sample, name, label, value string) (sum float64) {
	for _, s := range ss {
		if s.name == name && s.labels[label] == value {
			sum += s.value
		}
	}
	return sum
}

// synDrops fills l's accept queue with completed handshakes nobody accepts,
// so that most of 20 clients' SYNs are dropped on the SYN side (which the
// tracepoint tier derives from sk_drops), and returns the namespace's
// ListenDrops delta.
func synDrops(t *testing.T, ns *netlab.Netns, l *netlab.Listener) uint64 {
	t.Helper()
	return dialDrops(t, ns, l, 20, 1500*time.Millisecond)
}

// listenIn listens on 127.0.0.1 of ns with backlog 1 until the test ends.
func listenIn(t *testing.T, ns *netlab.Netns) *netlab.Listener {
	t.Helper()
	l, err := ns.Listen("tcp4", "127.0.0.1:0", 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func healthz(t *testing.T, target string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + target + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A listener created after serve started, in a namespace that had no
// listener then (or did not exist), has its sk_drops counted from zero: its
// drops before the first scrape are exported, every one, as the namespace's
// kernel counts them (issue: serve exported 0 of 40).
func TestKernelServeNewNamespaceFirstDrops(t *testing.T) {
	kerneltest.Root(t)
	t.Run("netns without listeners at start", func(t *testing.T) {
		const name = "synq-ledger-empty"
		_ = netlab.DeleteNamed(name)
		ns, err := netlab.New(name)
		if err != nil {
			t.Fatal(err)
		}
		defer ns.Close()
		target := startServe(t, "--netns", name)
		scrapeSamples(t, target) // a scrape before the listener exists
		l := listenIn(t, ns)
		want := synDrops(t, ns, l)
		m := scrapeSamples(t, target)
		if got := sumOf(m, "synq_listen_drops_total", "port", strconv.Itoa(int(l.Port()))); got != float64(want) {
			t.Errorf("synq_listen_drops_total of the new listener %v, the netns counted ListenDrops %d", got, want)
		}
	})
	t.Run("netns created after start", func(t *testing.T) {
		const name = "synq-ledger-later"
		_ = netlab.DeleteNamed(name)
		target := startServe(t, "--max-listeners", "10000")
		scrapeSamples(t, target)
		ns, err := netlab.New(name)
		if err != nil {
			t.Fatal(err)
		}
		defer ns.Close()
		l := listenIn(t, ns)
		want := synDrops(t, ns, l)
		m := scrapeSamples(t, target)
		if got := sumOf(m, "synq_listen_drops_total", "netns", strconv.FormatUint(ns.Inode(), 10)); got != float64(want) {
			t.Errorf("synq_listen_drops_total of netns %d %v, the netns counted ListenDrops %d", ns.Inode(), got, want)
		}
	})
}

// A closed listener's series go at --expire and stay gone, though its kernel
// map entries linger (issue: they came back every 5-10 s, counters at 0).
func TestKernelServeExpiredStayGone(t *testing.T) {
	ns, l := testListener(t, "synq-ledger-expire", 8)
	const expire = 2 * time.Second
	target := startServe(t, "--netns", ns.Name(), "--expire", expire.String())
	port := strconv.Itoa(int(l.Port()))
	res, err := ns.DialMany(context.Background(), l.Addr().String(), 3, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	for range 3 {
		c, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	m := scrapeSamples(t, target)
	if v, ok := sampleOf(m, "synq_accepted_total", port); !ok || v != 3 {
		t.Fatalf(":%s synq_accepted_total %v (found %v), want 3", port, v, ok)
	}
	l.Close()
	deadline := time.Now().Add(expire + 5*time.Second)
	for slices.Contains(ports(scrapeSamples(t, target), "synq_accepted_total"), port) {
		if time.Now().After(deadline) {
			t.Fatalf(":%s still exported %v after it closed (--expire %v)", port, expire+5*time.Second, expire)
		}
		time.Sleep(250 * time.Millisecond)
	}
	// Three more expiry periods: it must not come back.
	for end := time.Now().Add(3 * expire); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		m := scrapeSamples(t, target)
		for _, s := range m {
			if s.labels["port"] == port {
				t.Fatalf("expired listener :%s is back: %s%v = %v", port, s.name, s.labels, s.value)
			}
		}
	}
}

// `ip netns del NAME` while a process still uses the namespace: serve
// --netns NAME holds it open from the start and goes on counting every drop
// with queue gauges; when nothing but synq refers to it any more, /healthz
// says so (issue: 0 drops exported against 128, gauges gone, healthz ok).
func TestKernelServeNetnsDeleted(t *testing.T) {
	ns, l := testListener(t, "synq-ledger-del", 1)
	sleeper := exec.Command("ip", "netns", "exec", ns.Name(), "sleep", "120")
	if err := sleeper.Start(); err != nil {
		t.Skipf("ip netns exec: %v", err)
	}
	defer func() {
		sleeper.Process.Kill()
		sleeper.Wait()
	}()
	target := startServe(t, "--netns", ns.Name())
	scrapeSamples(t, target)
	if err := netlab.DeleteNamed(ns.Name()); err != nil {
		t.Fatal(err)
	}
	want := overflow(t, ns, l)
	m := scrapeSamples(t, target)
	port := strconv.Itoa(int(l.Port()))
	if got := sumOf(m, "synq_listen_drops_total", "port", port); got != float64(want) {
		t.Errorf("after ip netns del: synq_listen_drops_total %v, the netns counted ListenDrops %d", got, want)
	}
	if v, ok := sampleOf(m, "synq_accept_queue_max", port); !ok || v != 1 {
		t.Errorf("after ip netns del: synq_accept_queue_max %v (found %v), want 1", v, ok)
	}
	if code, body := healthz(t, target); code != 200 {
		t.Errorf("/healthz %d %q while a process still uses the netns", code, body)
	}
	sleeper.Process.Kill()
	sleeper.Wait()
	code, body := healthz(t, target)
	if code != 503 || !strings.Contains(body, "no process and no /run/netns name") {
		t.Errorf("/healthz %d %q once nothing but synq refers to the netns: want 503 saying so", code, body)
	}
}

// With exactly CAP_BPF and CAP_PERFMON synq cannot enter other namespaces:
// listeners and top say, once, which and why; trace --reconcile lists such a
// namespace with the reason instead of counting it idle.
func TestKernelUnenterableNamespaceSaid(t *testing.T) {
	ns, _ := testListener(t, "synq-ledger-caps", 16)
	said := func(t *testing.T, stderr string) {
		t.Helper()
		// Other tests' namespaces may come and go meanwhile (and be said in
		// lines of their own): this one must be said in exactly one line.
		n := 0
		for _, line := range strings.Split(stderr, "\n") {
			if strings.Contains(line, "cannot list the listeners of") && strings.Contains(line, ns.Name()+" ") {
				n++
				if !strings.Contains(line, "needs CAP_SYS_ADMIN") {
					t.Errorf("line naming %s lacks CAP_SYS_ADMIN: %q", ns.Name(), line)
				}
			}
		}
		if n != 1 {
			t.Errorf("want one line naming %s and CAP_SYS_ADMIN, got %d; stderr %q", ns.Name(), n, stderr)
		}
	}
	t.Run("listeners", func(t *testing.T) {
		r := runWithCaps(t, minimalCaps, "listeners", nil)
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		said(t, r.stderr)
	})
	t.Run("top", func(t *testing.T) {
		r := runWithCaps(t, minimalCaps, "top --once --interval 300ms --output json", nil)
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		said(t, r.stderr)
	})
	t.Run("trace --reconcile", func(t *testing.T) {
		r := runWithCaps(t, minimalCaps, "trace --duration 500ms", nil)
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		title := fmt.Sprintf("netns %s (net:[%d]): not readable: not allowed to enter (needs CAP_SYS_ADMIN)", ns.Name(), ns.Inode())
		if !strings.Contains(r.stderr, title) {
			t.Errorf("reconcile report lacks %q; stderr %q", title, r.stderr)
		}
		said(t, r.stderr) // once, though trace also lists to name workloads
	})
	t.Run("trace --unit", func(t *testing.T) {
		// A filter lists at start too: still said once.
		r := runWithCaps(t, minimalCaps, "trace --duration 500ms --unit no-such.service", nil)
		if r.code != 1 || !strings.Contains(r.stderr, "no listener matches --unit no-such.service") {
			t.Fatalf("exit %d, want 1 and no match: %s", r.code, r.stderr)
		}
		said(t, r.stderr)
	})
}

// The --netns target vanishes (`ip netns del`, no process in it): the next
// scrape counts the failure in the scrape health metrics, by source and
// reason, and /healthz answers 503 naming the source (issue: healthz said
// 200 while /metrics silently lost series).
func TestKernelServeNetnsVanishedScrapeHealth(t *testing.T) {
	ns, _ := testListener(t, "synq-ledger-vanish", 4)
	target := startServe(t, "--netns", ns.Name())
	before := scrapeSamples(t, target)
	if v := sumOf(before, "synq_scrape_source_success", "source", "netns"); v != 1 {
		t.Errorf("before: synq_scrape_source_success{source=netns} = %v, want 1", v)
	}
	if v := sumOf(before, "synq_scrape_source_reads_total", "source", "netns"); v < 1 {
		t.Errorf("before: synq_scrape_source_reads_total{source=netns} = %v, want at least 1", v)
	}
	for _, s := range before {
		if s.name == "synq_scrape_source_errors_total" {
			t.Errorf("before: %s%v = %v, want none", s.name, s.labels, s.value)
		}
	}
	for _, src := range []string{"netstat", "counts", "stats"} {
		if v := sumOf(before, "synq_scrape_source_success", "source", src); v != 1 {
			t.Errorf("before: synq_scrape_source_success{source=%s} = %v, want 1", src, v)
		}
	}
	if code, body := healthz(t, target); code != 200 || body != "ok\n" {
		t.Errorf("/healthz before: %d %q", code, body)
	}

	if err := netlab.DeleteNamed(ns.Name()); err != nil {
		t.Fatal(err)
	}
	after := scrapeSamples(t, target)
	if v := sumOf(after, "synq_scrape_source_success", "source", "netns"); v != 0 {
		t.Errorf("after ip netns del: synq_scrape_source_success{source=netns} = %v, want 0", v)
	}
	var orphaned float64
	for _, s := range after {
		if s.name == "synq_scrape_source_errors_total" && s.labels["source"] == "netns" && s.labels["reason"] == "orphaned" {
			orphaned = s.value
		}
	}
	if orphaned != 1 {
		t.Errorf("after ip netns del and one scrape: synq_scrape_source_errors_total{source=netns,reason=orphaned} = %v, want 1", orphaned)
	}
	code, body := healthz(t, target)
	if code != 503 || !strings.Contains(body, "source netns failing") || !strings.Contains(body, ns.Name()) {
		t.Errorf("/healthz after ip netns del: %d %q, want 503 naming source netns and %s", code, body, ns.Name())
	}
}
