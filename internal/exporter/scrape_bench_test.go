package exporter

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/synq-trace/synq/internal/aggregate"
	"github.com/synq-trace/synq/internal/identity"
	"github.com/synq-trace/synq/tracer"
)

// BenchmarkScrapeCostPerSlot measures what one listener slot costs a scrape
// (docs/exporter.md): 10000 listeners with every counter and a latency
// histogram, all with slots of their own and owned by a pod's container
// (identity labels and synq_listener_info, as on a Kubernetes node). Reported per slot: series,
// response bytes (text format, and gzip as Prometheus asks) and bytes
// allocated by gathering and encoding.
func BenchmarkScrapeCostPerSlot(b *testing.B) {
	const n = 10000
	f := newFake(fentryInfo())
	for i := 1; i <= n; i++ {
		id := tracer.ListenerID(i)
		f.listen(id, uint16(1000+i))
		f.update(id, func(c *tracer.Counts) {
			*c = tracer.Counts{Syn: 20, Cookie: 1, SynackRetrans: 2, Enqueue: 15, AckOverflow: 1, Accept: 14,
				DropSynQueue: 1, DropAcceptQueue: 2, DropOther: 1}
		})
		f.accepted(id, 50*time.Microsecond, 2*time.Millisecond, 300*time.Millisecond)
		sum := sha256.Sum256([]byte{byte(i), byte(i >> 8)})
		ctr := hex.EncodeToString(sum[:])
		f.owners[uint64(id)*10] = []aggregate.Owner{{PID: 1000 + i, Comm: "server", Identity: identity.Identity{
			Runtime: "containerd", ContainerID: ctr, PodUID: fmt.Sprintf("%08x-1111-4222-8333-444455556666", i),
			Namespace: "shop", Pod: fmt.Sprintf("checkout-7d9f8b6c5d-%05d", i), Container: "checkout"}}}
	}
	e, err := New(f, Options{MaxListeners: n, ReconciledNetns: testNetns, Logf: func(string, ...any) {}})
	if err != nil {
		b.Fatal(err)
	}
	reg, err := Registry(e)
	if err != nil {
		b.Fatal(err)
	}
	h := NewScrapeHandler(reg, log.New(io.Discard, "", 0))
	scrape := func(gzip bool) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/metrics", nil)
		if gzip {
			req.Header.Set("Accept-Encoding", "gzip")
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("scrape: %d", w.Code)
		}
		return w
	}
	plain := scrape(false)
	series := 0
	for _, line := range strings.Split(plain.Body.String(), "\n") {
		if strings.HasPrefix(line, "synq_") {
			series++
		}
	}
	zipped := scrape(true).Body.Len()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	b.ResetTimer()
	for range b.N {
		scrape(true)
	}
	b.StopTimer()
	runtime.ReadMemStats(&m1)
	b.ReportMetric(float64(series)/n, "series/slot")
	b.ReportMetric(float64(plain.Body.Len())/n, "text-B/slot")
	b.ReportMetric(float64(zipped)/n, "gzip-B/slot")
	b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/float64(b.N)/n, "alloc-B/slot")
}
