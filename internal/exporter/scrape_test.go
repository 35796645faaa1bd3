package exporter

import (
	"bufio"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The landing page names synq, its version and links to /metrics and
// /healthz (exporter-toolkit's page, as every exporter has).
func TestLandingPage(t *testing.T) {
	url := serve(t, populated(t), func() error { return nil })
	code, body := get(t, url+"/")
	for _, want := range []string{"synq", "1.2.3-test", `href="/metrics"`, `href="/healthz"`} {
		if !strings.Contains(body, want) {
			t.Errorf("landing page (%d) lacks %q:\n%s", code, want, body)
		}
	}
	if code != 200 {
		t.Errorf("landing page: %d", code)
	}
}

// OpenMetrics is negotiated: asked for, it is served (with its # EOF);
// otherwise the text format.
func TestOpenMetricsNegotiated(t *testing.T) {
	url := serve(t, populated(t), func() error { return nil })
	for _, c := range []struct{ accept, ctype, tail string }{
		{"application/openmetrics-text; version=1.0.0; charset=utf-8", "application/openmetrics-text", "# EOF\n"},
		{"", "text/plain; version=0.0.4", ""},
	} {
		req, _ := http.NewRequest("GET", url+"/metrics", nil)
		if c.accept != "" {
			req.Header.Set("Accept", c.accept)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, c.ctype) {
			t.Errorf("Accept %q: Content-Type %q, want %s", c.accept, ct, c.ctype)
		}
		if !strings.HasSuffix(string(body), c.tail) || !strings.Contains(string(body), "synq_listen_drops_total") {
			t.Errorf("Accept %q: body does not end in %q or lacks synq_listen_drops_total", c.accept, c.tail)
		}
	}
}

// bigCollector exports n series of about size bytes each in the text format,
// and counts the Collect calls running at once.
type bigCollector struct {
	desc       *prometheus.Desc
	n          int
	value      string
	running    atomic.Int32
	maxRunning atomic.Int32
}

func newBigCollector(n, size int) *bigCollector {
	return &bigCollector{
		desc:  prometheus.NewDesc("test_big", "A large scrape.", []string{"i", "pad"}, nil),
		n:     n,
		value: strings.Repeat("x", size),
	}
}

func (c *bigCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *bigCollector) Collect(ch chan<- prometheus.Metric) {
	r := c.running.Add(1)
	defer c.running.Add(-1)
	for m := c.maxRunning.Load(); r > m && !c.maxRunning.CompareAndSwap(m, r); m = c.maxRunning.Load() {
	}
	for i := range c.n {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, 1, fmt.Sprint(i), c.value)
	}
}

// #12 item 9: clients that ask for a large scrape and never read the
// response. At most MaxScrapesInFlight are served at once, each holding its
// encoded response only (gathering runs one at a time); the next is refused
// with 503 at once, and a slot is free again when a stalled client goes.
func TestScrapesInFlightBounded(t *testing.T) {
	big := newBigCollector(20000, 800) // ~16 MB of text: more than any socket buffers
	reg := prometheus.NewRegistry()
	reg.MustRegister(big)
	h := NewScrapeHandler(reg, log.New(io.Discard, "", 0))
	srv := &http.Server{Handler: h, WriteTimeout: time.Minute}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	addr := ln.Addr().String()

	// Non-reading clients: a tiny receive buffer, a request, no read.
	stalled := make([]net.Conn, 0, MaxScrapesInFlight)
	for range MaxScrapesInFlight {
		d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			return rc.Control(func(fd uintptr) {
				syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
			})
		}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: identity\r\n\r\n")
		stalled = append(stalled, c)
	}
	// Wait (no timing assumption: until it is so, or the test's deadline)
	// until every stalled scrape is in flight, blocked writing.
	for deadline := time.Now().Add(30 * time.Second); h.InFlight() < MaxScrapesInFlight; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d scrapes in flight after 30s, want %d", h.InFlight(), MaxScrapesInFlight)
		}
	}
	// A reading client now is refused at once, in one line.
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "scrapes in flight") {
		t.Errorf("scrape beyond %d in flight: %d %q, want 503", MaxScrapesInFlight, resp.StatusCode, body)
	}
	if m := big.maxRunning.Load(); m != 1 {
		t.Errorf("%d gathers ran at once, want 1", m)
	}
	// The stalled clients' responses are complete and sized: each holds
	// its encoded body, not the gathered families.
	r := bufio.NewReader(stalled[0])
	first, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, first.Body)
	if first.StatusCode != 200 || first.ContentLength != n || n < 16e6 {
		t.Errorf("stalled scrape, read at last: %d, Content-Length %d, %d bytes", first.StatusCode, first.ContentLength, n)
	}
	// One client gone: its slot serves the next scrape.
	stalled[1].Close()
	for deadline := time.Now().Add(30 * time.Second); h.InFlight() >= MaxScrapesInFlight-1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d scrapes in flight after two clients went", h.InFlight())
		}
	}
	resp, err = http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	n, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || n < 16e6 {
		t.Errorf("scrape after a slot freed: %d, %d bytes", resp.StatusCode, n)
	}
}
