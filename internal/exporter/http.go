package exporter

import (
	"bytes"
	"errors"
	"fmt"
	"log"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/exporter-toolkit/web"
)

// Registry holds the exporter and synq's own process and Go runtime metrics
// (memory, open fds: what an agent on every node should be watched for).
func Registry(e *Exporter) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{
		e,
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector(),
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return reg, nil
}

// Server timeouts. A scrape enters every network namespace: WriteTimeout
// leaves it room, the handler's own timeout answers before it.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 2 * time.Minute
	scrapeTimeout     = 25 * time.Second
	maxHeaderBytes    = 16 << 10
	// MaxScrapesInFlight scrapes are served at once (an HA pair of
	// Prometheus servers, a curl); more get 503 at once. Each holds its
	// encoded response until the client has read it (or WriteTimeout).
	MaxScrapesInFlight = 4
)

// NewServer serves /metrics from reg, /healthz, which answers 200 while
// health returns nil or a *Degraded (named in the body) and 503 with the
// reason otherwise, and a landing page
// with version and links on /. errLog gets what the HTTP server and the
// metrics handler report.
func NewServer(reg prometheus.Gatherer, health func() error, errLog *log.Logger, version string) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", NewScrapeHandler(reg, errLog))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		err := health()
		var d *Degraded
		if errors.As(err, &d) {
			fmt.Fprintf(w, "ok, degraded: %v\n", d)
			return
		}
		if err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "unhealthy: %v\n", err)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	landing, err := web.NewLandingPage(web.LandingConfig{
		Name:        "synq",
		Description: "Per-listener TCP SYN queue, accept queue, drops and accept latency, reconciled with the kernel's counters",
		Version:     version,
		Profiling:   "false",
		Links: []web.LandingLinks{
			{Address: "/metrics", Text: "Metrics", Description: "Prometheus and OpenMetrics exposition"},
			{Address: "/healthz", Text: "Health", Description: "200 ok while synq does its job (naming sources that degrade it), 503 naming what fails otherwise"},
		},
	})
	if err != nil {
		// The template is the toolkit's own and the fields are constants:
		// this cannot fail at run time.
		panic(fmt.Sprintf("landing page: %v", err))
	}
	mux.Handle("GET /{$}", landing)
	return &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          errLog,
	}
}

// ScrapeHandler serves /metrics with bounded memory. A scrape's cost is its
// gathered metric families (hundreds of bytes per series), then its encoded
// response (text, OpenMetrics or protobuf, gzip when the client accepts it).
// Gathering and encoding run one scrape at a time into a buffer, and the
// families are released before the response is written: a client that does
// not read holds only its encoded response, for at most the server's
// WriteTimeout, and at most MaxScrapesInFlight scrapes are in flight.
type ScrapeHandler struct {
	h        http.Handler
	gather   sync.Mutex    // one gather+encode at a time
	slots    chan struct{} // scrapes in flight
	inFlight atomic.Int64
}

// NewScrapeHandler negotiates OpenMetrics, text and protobuf, and gzip.
func NewScrapeHandler(reg prometheus.Gatherer, errLog *log.Logger) *ScrapeHandler {
	return &ScrapeHandler{
		h: promhttp.HandlerFor(reg, promhttp.HandlerOpts{
			ErrorLog:          errLog,
			ErrorHandling:     promhttp.ContinueOnError,
			EnableOpenMetrics: true,
			Timeout:           scrapeTimeout,
		}),
		slots: make(chan struct{}, MaxScrapesInFlight),
	}
}

// InFlight is the number of scrapes being gathered or written.
func (s *ScrapeHandler) InFlight() int { return int(s.inFlight.Load()) }

func (s *ScrapeHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	select {
	case s.slots <- struct{}{}:
	default:
		http.Error(w, fmt.Sprintf("%d scrapes in flight: try again later", MaxScrapesInFlight), http.StatusServiceUnavailable)
		return
	}
	s.inFlight.Add(1)
	defer func() {
		s.inFlight.Add(-1)
		<-s.slots
	}()
	var b bufferedResponse
	s.gather.Lock()
	s.h.ServeHTTP(&b, r)
	s.gather.Unlock()
	for k, v := range b.header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Length", fmt.Sprint(b.body.Len()))
	if b.code == 0 {
		b.code = http.StatusOK
	}
	w.WriteHeader(b.code)
	w.Write(b.body.Bytes())
}

// bufferedResponse is an http.ResponseWriter that keeps what is written.
type bufferedResponse struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header {
	if b.header == nil {
		b.header = http.Header{}
	}
	return b.header
}

func (b *bufferedResponse) WriteHeader(code int) {
	if b.code == 0 {
		b.code = code
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.code == 0 {
		b.code = http.StatusOK
	}
	return b.body.Write(p)
}
