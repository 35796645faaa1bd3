package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/synq-trace/synq/internal/kerneltest"
)

// The shipped alerting rules in a real Prometheus scraping a real synq
// serve: an overflowing listener makes SynqListenerDropping fire, named by
// its netns, address and port, with the synq doctor to run; its healthy
// neighbour raises nothing. The rules are deploy/prometheus/synq-rules.yml
// with every group evaluated each second and every for: shortened to 2s
// (promtool's unit tests pin the real durations).
func TestKernelServeDropAlertFires(t *testing.T) {
	kerneltest.Root(t)
	promBin := prometheusBinary(t)
	nsName := fmt.Sprintf("synq-alert-%d", os.Getpid())
	ns, l := testListener(t, nsName, 1)
	healthy := kerneltest.Listen(t, ns, "tcp4", "127.0.0.1:0", 16)

	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "prometheus", "synq-rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	rules := strings.ReplaceAll(string(b), "    rules:\n", "    interval: 1s\n    rules:\n")
	rules = regexp.MustCompile(`(?m)^(\s+)for: \S+$`).ReplaceAllString(rules, "${1}for: 2s")
	rulesPath := filepath.Join(t.TempDir(), "synq-rules.yml")
	if err := os.WriteFile(rulesPath, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}

	target := startServe(t, "--netns", nsName)
	base := startPrometheusWith(t, promBin, fmt.Sprintf(`  - job_name: synq
    static_configs:
      - targets: [%q]
rule_files:
  - %q
`, target, rulesPath))
	sel := fmt.Sprintf(`netns="%d",addr="127.0.0.1",port="%d"`, ns.Inode(), l.Port())
	waitQuery(t, base, fmt.Sprintf(`sum(synq_listen_drops_total{%s})`, sel), 10*time.Second, func(v float64) bool { return v == 0 })
	if a := promAlerts(t, base); len(a) != 0 {
		t.Errorf("alerts before any drop: %+v", a)
	}

	want := overflow(t, ns, l)
	port := strconv.Itoa(int(l.Port()))
	inode := strconv.FormatUint(ns.Inode(), 10)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var firing *promAlert
		for _, a := range promAlerts(t, base) {
			if a.Labels["alertname"] == "SynqListenerDropping" && a.State == "firing" {
				if a.Labels["port"] != port || a.Labels["netns"] != inode {
					t.Errorf("SynqListenerDropping for another listener: %+v", a)
				}
				firing = &a
			}
			if a.Labels["port"] == strconv.Itoa(int(healthy.Port())) {
				t.Errorf("an alert for the healthy listener: %+v", a)
			}
		}
		if firing != nil {
			t.Logf("firing after %d drops: %s / %s", want, firing.Annotations["summary"], firing.Annotations["description"])
			if !strings.Contains(firing.Annotations["summary"], "127.0.0.1:"+port) {
				t.Errorf("summary %q does not name the listener", firing.Annotations["summary"])
			}
			if !strings.Contains(firing.Annotations["description"], "synq doctor --netns "+inode+" --port "+port) {
				t.Errorf("description %q does not give the synq doctor to run", firing.Annotations["description"])
			}
			if !strings.Contains(firing.Annotations["runbook_url"], "docs/runbook.md#synqlistenerdropping") {
				t.Errorf("runbook_url %q", firing.Annotations["runbook_url"])
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("SynqListenerDropping not firing 30s after %d drops: %+v", want, promAlerts(t, base))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

type promAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"`
}

// promAlerts reads Prometheus' active alerts (pending and firing).
func promAlerts(t *testing.T, base string) []promAlert {
	t.Helper()
	var r struct {
		Status string `json:"status"`
		Data   struct {
			Alerts []promAlert `json:"alerts"`
		} `json:"data"`
	}
	promAPI(t, base+"/api/v1/alerts", &r)
	if r.Status != "success" {
		t.Fatalf("/api/v1/alerts: %s", r.Status)
	}
	return r.Data.Alerts
}
