package exporter

import (
	"os"
	"strings"
	"testing"
)

// Issue 14.6: what synq_events_lost_total counts is said the same way in its
// HELP and in docs/exporter.md, and truly: the accept latency histogram is read
// from a kernel map (descLatency), so a full ring buffer cannot take counts
// from it; only program runs skipped for recursion miss from the counters
// and histograms.
func TestLostHelpAgreesWithReadme(t *testing.T) {
	help := descLost.String()
	readme, err := os.ReadFile("../../docs/exporter.md")
	if err != nil {
		t.Fatal(err)
	}
	var row string
	for _, l := range strings.Split(string(readme), "\n") {
		if strings.HasPrefix(l, "| `synq_events_lost_total`") {
			row = l
		}
	}
	if row == "" {
		t.Fatal("docs/exporter.md has no synq_events_lost_total row")
	}
	if !strings.Contains(descLatency.String(), "kernel's per-listener histogram") {
		t.Fatalf("the latency histogram is no longer the kernel's: %s", descLatency)
	}
	for name, text := range map[string]string{"HELP": help, "README": row} {
		if strings.Contains(text, "histogram does") || !strings.Contains(text, "kept in kernel maps") || !strings.Contains(text, "recursion") {
			t.Errorf("%s of synq_events_lost_total: %q: must say a full ring buffer loses no count (kernel maps), and recursion misses do", name, text)
		}
	}
}
