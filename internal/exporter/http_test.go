package exporter

import (
	"bytes"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
)

// serve starts NewServer on a loopback port and returns its base URL.
func serve(t *testing.T, e *Exporter, health func() error) string {
	t.Helper()
	reg, err := Registry(e)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	srv := NewServer(reg, health, log.New(&logs, "", 0), "1.2.3-test")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		srv.Close()
		if logs.Len() > 0 {
			t.Logf("server log: %s", logs.String())
		}
	})
	return "http://" + ln.Addr().String()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestServer(t *testing.T) {
	var healthErr error
	url := serve(t, populated(t), func() error { return healthErr })
	code, body := get(t, url+"/metrics")
	if code != 200 || !strings.Contains(body, "synq_listen_drops_total{") || !strings.Contains(body, "process_resident_memory_bytes") {
		t.Errorf("/metrics: %d\n%s", code, body)
	}
	if code, body := get(t, url+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	healthErr = &Degraded{Problems: []string{"source netns failing: not allowed"}}
	if code, body := get(t, url+"/healthz"); code != 200 || body != "ok, degraded: source netns failing: not allowed\n" {
		t.Errorf("/healthz when degraded: %d %q", code, body)
	}
	healthErr = errors.New("event reader stopped")
	if code, body := get(t, url+"/healthz"); code != 503 || !strings.Contains(body, "event reader stopped") {
		t.Errorf("/healthz when unhealthy: %d %q", code, body)
	}
	if code, _ := get(t, url+"/nothing"); code != 404 {
		t.Errorf("/nothing: %d, want 404", code)
	}
	resp, err := http.Post(url+"/metrics", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics: %d, want 405", resp.StatusCode)
	}
}

// A client that sends headers forever, or too many, is cut off.
func TestServerLimits(t *testing.T) {
	srv := NewServer(nil, nil, log.New(io.Discard, "", 0), "")
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout <= 0 || srv.WriteTimeout <= 0 || srv.IdleTimeout <= 0 || srv.MaxHeaderBytes <= 0 {
		t.Fatalf("server without timeouts or header limit: %+v", srv)
	}
	url := serve(t, populated(t), func() error { return nil })
	req, _ := http.NewRequest("GET", url+"/metrics", nil)
	req.Header.Set("X-Big", strings.Repeat("x", 2*maxHeaderBytes))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("%d-byte header: status %d, want 431", 2*maxHeaderBytes, resp.StatusCode)
	}
}

// promtool (Prometheus' own linter, in Debian's prometheus package) accepts
// a scrape with every metric populated.
func TestPromtoolCheckMetrics(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian package prometheus)")
	}
	url := serve(t, populated(t), func() error { return nil })
	_, body := get(t, url+"/metrics")
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	if !strings.Contains(body, "synq_accept_latency_seconds_bucket{") || !strings.Contains(body, "synq_kernel_netstat_total{") {
		t.Errorf("scrape lacks the histogram or kernel counters:\n%s", body)
	}
	// Every family is typed, so that rate() means something: the kernel's
	// counters are counters, its levels gauges.
	for _, want := range []string{"# TYPE synq_kernel_netstat_total counter\n", "# TYPE synq_kernel_netstat_current gauge\n",
		`synq_kernel_netstat_current{name="Tcp_CurrEstab",netns="4026532000"} 3`} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	if strings.Contains(body, " untyped\n") {
		t.Errorf("scrape has untyped families:\n%s", body)
	}
	if strings.Contains(body, `synq_kernel_netstat_total{name="Tcp_CurrEstab"`) {
		t.Errorf("a level (Tcp_CurrEstab) exported as a counter")
	}
}
