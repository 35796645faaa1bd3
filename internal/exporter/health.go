package exporter

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/synq-trace/synq/internal/ledger"
	"github.com/synq-trace/synq/internal/netns"
	"golang.org/x/sys/unix"
)

// Sources a scrape reads, the values of the source label of the scrape
// health metrics.
const (
	// SourceNetns: one read per network namespace walked (its listening
	// sockets, iter/tcp), or the walk's failure to find the namespaces.
	SourceNetns = "netns"
	// SourceNetstat: /proc/net/snmp and /proc/net/netstat of the reconciled
	// namespace (synq_kernel_*, synq_reconcile_coverage_ratio).
	SourceNetstat = "netstat"
	// SourceCounts, SourceHistograms, SourceStats: the tracer's kernel maps
	// (per-listener counters, accept latency histograms, loss counters).
	SourceCounts     = "counts"
	SourceHistograms = "histograms"
	SourceStats      = "stats"
	// SourceCRI: the container runtime's CRI API, asked for the pod,
	// Kubernetes namespace and container names of listeners whose cgroup
	// names a container. Its failure leaves the names empty, never more.
	SourceCRI = "cri"
)

// Why a source read failed, the values of the reason label.
const (
	// ReasonPermission: not allowed (EPERM: entering another namespace
	// needs CAP_SYS_ADMIN).
	ReasonPermission = "permission"
	// ReasonGone: the namespace is no longer there to enter.
	ReasonGone = "gone"
	// ReasonOrphaned: the --netns namespace is still read, but no process
	// and no /run/netns name refers to it any more: nothing synq watches
	// there can move again.
	ReasonOrphaned = "orphaned"
	// ReasonError: any other failure (the message is on stderr and /healthz).
	ReasonError = "error"
)

var (
	descSourceReads = prometheus.NewDesc("synq_scrape_source_reads_total",
		"Reads of each source by scrapes: netns (one per network namespace walked), netstat (/proc/net counters, one per "+
			"namespace read), counts, histograms, stats (the tracer's kernel maps), cri (the container runtime, asked for "+
			"pod, namespace and container names).",
		[]string{"source"}, nil)
	descSourceErrors = prometheus.NewDesc("synq_scrape_source_errors_total",
		"Reads of each source that failed, by reason: permission, gone (a namespace vanished), orphaned (the --netns "+
			"namespace has no process and no name left), error (see /healthz and stderr).",
		[]string{"source", "reason"}, nil)
	descSourceSuccess = prometheus.NewDesc("synq_scrape_source_success",
		"Whether every read of the source succeeded in the last scrape (1) or one failed (0).",
		[]string{"source"}, nil)
)

// fatal sources: when one of them fails synq cannot do its job, and
// /healthz answers 503. The others degrade it (200, named).
var fatalSource = map[string]bool{SourceCounts: true, SourceHistograms: true, SourceStats: true}

type sourceHealth struct {
	reads  uint64
	errors map[string]uint64
	used   bool     // read at least once
	failed []string // the last scrape's failures, worded
	fatal  bool     // one of them means synq cannot do its job
}

// scrapeHealth counts the source reads of every scrape.
type scrapeHealth struct{ src map[string]*sourceHealth }

func (h *scrapeHealth) get(source string) *sourceHealth {
	if h.src == nil {
		h.src = map[string]*sourceHealth{}
	}
	s := h.src[source]
	if s == nil {
		s = &sourceHealth{errors: map[string]uint64{}}
		h.src[source] = s
	}
	return s
}

// begin starts a scrape: the last one's failures are forgotten.
func (h *scrapeHealth) begin() {
	for _, s := range h.src {
		s.failed, s.fatal = nil, false
	}
}

// read counts one read of source; a non-nil err is a failure.
func (h *scrapeHealth) read(source string, err error) {
	s := h.get(source)
	s.reads++
	s.used = true
	if err != nil {
		h.fail(source, reasonOf(err), err.Error(), fatalSource[source])
	}
}

// fail counts a failure of a read already counted.
func (h *scrapeHealth) fail(source, reason, msg string, fatal bool) {
	s := h.get(source)
	s.errors[reason]++
	s.failed = append(s.failed, msg)
	s.fatal = s.fatal || fatal
}

func reasonOf(err error) string {
	switch {
	case errors.Is(err, unix.EPERM):
		return ReasonPermission
	case errors.Is(err, unix.ENOENT), errors.Is(err, netns.ErrGone):
		return ReasonGone
	}
	return ReasonError
}

// walked counts the reads of one walk. lerr is the walk's own error: with
// --netns, its namespace could not be listed; without, the namespaces could
// not be found. Either way synq cannot list what it was asked to watch.
func (h *scrapeHealth) walked(v *ledger.View, lerr error) {
	if v == nil {
		h.read(SourceNetns, lerr)
		h.get(SourceNetns).fatal = true
		return
	}
	gone := map[uint64]bool{}
	for _, g := range v.Gone {
		gone[g.Inode] = true
	}
	for _, n := range v.Netns {
		h.read(SourceNetns, n.Err)
		switch {
		case n.Err != nil:
			if lerr != nil {
				h.get(SourceNetns).fatal = true
			}
		case gone[n.NS.Inode]:
			// Listed, and in Gone: the --netns namespace synq holds
			// open, which nothing else refers to any more.
			h.fail(SourceNetns, ReasonOrphaned, fmt.Sprintf("netns %s: no process and no /run/netns name refers to it any more (synq holds it open)", n.NS), true)
		}
	}
}

func (h *scrapeHealth) collect(ch chan<- prometheus.Metric) {
	for name, s := range h.src {
		if !s.used {
			continue
		}
		ch <- prometheus.MustNewConstMetric(descSourceReads, prometheus.CounterValue, float64(s.reads), name)
		for r, n := range s.errors {
			ch <- prometheus.MustNewConstMetric(descSourceErrors, prometheus.CounterValue, float64(n), name, r)
		}
		ok := 1.0
		if len(s.failed) > 0 {
			ok = 0
		}
		ch <- prometheus.MustNewConstMetric(descSourceSuccess, prometheus.GaugeValue, ok, name)
	}
}

// status words the last scrape's failing sources: fatal ones, which stop
// synq doing its job, and the others.
func (h *scrapeHealth) status() (fatal, degraded []string) {
	names := make([]string, 0, len(h.src))
	for name := range h.src {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		s := h.src[name]
		if len(s.failed) == 0 {
			continue
		}
		msg := fmt.Sprintf("source %s failing: %s", name, strings.Join(dedup(s.failed), "; "))
		if s.fatal {
			fatal = append(fatal, msg)
		} else {
			degraded = append(degraded, msg)
		}
	}
	return fatal, degraded
}

func dedup(ss []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// Degraded is a health problem that leaves synq doing its job (a namespace
// it may not enter, the reconciled namespace's counters unreadable):
// /healthz answers 200 and names it.
type Degraded struct{ Problems []string }

func (d *Degraded) Error() string { return strings.Join(d.Problems, "; ") }

// Healthy says what failed in the last scrape: an error naming the failing
// sources when synq cannot do its job (the tracer's maps unreadable, the
// --netns namespace unlisted or orphaned), a *Degraded when it still can,
// nil when every read succeeded.
func (e *Exporter) Healthy() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	fatal, degraded := e.health.status()
	if len(fatal) > 0 {
		return errors.New(strings.Join(append(fatal, degraded...), "; "))
	}
	if len(degraded) > 0 {
		return &Degraded{Problems: degraded}
	}
	return nil
}
