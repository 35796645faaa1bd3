package exporter

import (
	"errors"
	"strings"
	"testing"
)

// A namespace synq may not enter degrades the scrape: counted by source
// and reason at every scrape, the source's success is 0, and Healthy says
// which source fails without calling synq unable to do its job.
func TestScrapeHealthDegraded(t *testing.T) {
	f := newFake(fentryInfo())
	f.listen(1, 8001)
	e, _ := newTestExporter(t, f, Options{})
	m := scrape(t, e)
	for _, src := range []string{SourceNetns, SourceNetstat, SourceCounts, SourceHistograms, SourceStats} {
		if v := m["synq_scrape_source_success{source="+src+"}"]; v != 1 {
			t.Errorf("source %s success %v, want 1", src, v)
		}
	}
	if err := e.Healthy(); err != nil {
		t.Errorf("Healthy() = %v with every read succeeding", err)
	}
	f.denied = []uint32{testNetns + 1}
	scrape(t, e)
	m = scrape(t, e)
	if v := m["synq_scrape_source_errors_total{reason=permission,source=netns}"]; v != 2 {
		t.Errorf("netns permission errors after two scrapes: %v, want 2", v)
	}
	if v := m["synq_scrape_source_success{source=netns}"]; v != 0 {
		t.Errorf("netns success %v, want 0", v)
	}
	if v := m["synq_scrape_source_success{source=counts}"]; v != 1 {
		t.Errorf("counts success %v, want 1", v)
	}
	// Three scrapes, of two namespaces in the last two.
	if v := m["synq_scrape_source_reads_total{source=netns}"]; v != 5 {
		t.Errorf("netns reads %v, want 5", v)
	}
	var d *Degraded
	if err := e.Healthy(); !errors.As(err, &d) || !strings.Contains(err.Error(), "source netns failing") {
		t.Errorf("Healthy() = %v, want *Degraded naming source netns", err)
	}
	f.denied = nil
	scrape(t, e)
	if err := e.Healthy(); err != nil {
		t.Errorf("Healthy() = %v once every namespace is listed again", err)
	}
}
