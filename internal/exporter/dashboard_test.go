package exporter

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/synq-trace/synq/internal/aggregate"
	"github.com/synq-trace/synq/internal/identity"
	"github.com/synq-trace/synq/tracer"
)

const dashboardPath = "../../deploy/grafana/synq.json"

// populated is an exporter that has something in every metric it can
// export: the fentry tier, a listener with every counter, a folded one,
// accept latencies, losses, kernel counters.
func populated(t *testing.T) *Exporter {
	t.Helper()
	f := newFake(fentryInfo())
	f.listen(1, 8001)
	f.listen(2, 8002)
	e, _ := newTestExporter(t, f, Options{MaxListeners: 1})
	f.update(1, func(c *tracer.Counts) {
		*c = tracer.Counts{Syn: 20, Cookie: 1, SynackRetrans: 2, Enqueue: 15, AckOverflow: 1, Accept: 14,
			DropSynQueue: 1, DropAcceptQueue: 2, DropOther: 1}
	})
	f.update(2, func(c *tracer.Counts) { c.Enqueue = 1 })
	f.stats = tracer.Stats{Lost: 3}
	f.denied = []uint32{testNetns + 1}
	f.kernel["TcpExt.ListenDrops"] = 5
	f.kernel["Tcp.CurrEstab"] = 3
	f.owners = map[uint64][]aggregate.Owner{10: {{PID: 42, Comm: "nginx", Identity: identity.Identity{
		Runtime: "containerd", ContainerID: strings.Repeat("ab", 32), PodUID: "0b0b", Pod: "web-0", Namespace: "shop", Container: "nginx"}}}}
	f.accepted(1, 50*time.Microsecond, 2*time.Millisecond, 300*time.Millisecond, 20*time.Second)
	return e
}

// exportedNames derives, from the exporter's own descriptors and what it
// gathers, every series name Prometheus stores (histograms as _bucket, _sum,
// _count) and the labels of each.
func exportedNames(t *testing.T) map[string][]string {
	t.Helper()
	e := populated(t)
	descs := make(chan *prometheus.Desc, 64)
	e.Describe(descs)
	close(descs)
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	described := map[string]bool{}
	for d := range descs {
		m := fqName.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("cannot read the name of %s", d)
		}
		described[m[1]] = true
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(e)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, mf := range mfs {
		if !described[mf.GetName()] {
			t.Errorf("%s gathered but not described", mf.GetName())
		}
		delete(described, mf.GetName())
		labels := map[string]bool{}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = true
			}
		}
		if mf.GetType() == dto.MetricType_HISTOGRAM {
			labels["le"] = true
		}
		ls := make([]string, 0, len(labels))
		for l := range labels {
			ls = append(ls, l)
		}
		names := []string{mf.GetName()}
		if mf.GetType() == dto.MetricType_HISTOGRAM {
			names = []string{mf.GetName() + "_bucket", mf.GetName() + "_sum", mf.GetName() + "_count"}
		}
		for _, n := range names {
			out[n] = ls
		}
	}
	for n := range described {
		t.Errorf("%s is described but the populated exporter never sends it: the dashboard check cannot see its type", n)
	}
	return out
}

var (
	reString   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	reMatchers = regexp.MustCompile(`\{[^{}]*\}`)
	reRange    = regexp.MustCompile(`\[[^\[\]]*\]`)
	reGrouping = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	reOffset   = regexp.MustCompile(`\boffset\s+-?[0-9][0-9a-zA-Z]*`)
	reNumber   = regexp.MustCompile(`\b[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?\b`)
	reIdent    = regexp.MustCompile(`\$?[a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?`)
	reMatcher  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"`)
	reSelector = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^{}]*\})`)
	reLabelVal = regexp.MustCompile(`^label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$`)
	keywords   = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true,
		"group_right": true, "bool": true, "and": true, "or": true, "unless": true, "offset": true, "inf": true, "nan": true}
)

// metricNames returns the metric names a PromQL expression selects: the
// identifiers left once strings, label matchers, ranges, grouping clauses,
// offsets, numbers, function calls, keywords and Grafana variables are removed.
func metricNames(expr string) []string {
	s := reMatchers.ReplaceAllString(expr, "{}")
	s = reString.ReplaceAllString(s, `""`)
	s = reRange.ReplaceAllString(s, "[]")
	s = reGrouping.ReplaceAllString(s, "")
	s = reOffset.ReplaceAllString(s, "")
	s = reNumber.ReplaceAllString(s, "0")
	var out []string
	for _, id := range reIdent.FindAllString(s, -1) {
		if strings.HasPrefix(id, "$") || strings.HasSuffix(id, "(") || keywords[strings.ToLower(id)] {
			continue
		}
		out = append(out, id)
	}
	return out
}

func TestMetricNames(t *testing.T) {
	for expr, want := range map[string][]string{
		`sum by (instance, le) (rate(a_bucket{x=~"$v",y="by(z)"}[$__rate_interval]))`:            {"a_bucket"},
		`histogram_quantile(0.99, sum without (q) (rate(b[5m]))) > 1e3 and on (i) c offset 5m`:   {"b", "c"},
		`d / on (instance, netns) group_left (name) (e{n!~"x|y"} > 0)`:                           {"d", "e"},
		`min(f{counter="ListenDrops"})`:                                                          {"f"},
		`sum(rate(synq_listen_drops_total{instance=~"$instance",netns=~"$netns"}[$__interval]))`: {"synq_listen_drops_total"},
	} {
		if got := metricNames(expr); !slices.Equal(got, want) {
			t.Errorf("metricNames(%s) = %v, want %v", expr, got, want)
		}
	}
}

type panel struct {
	ID      int    `json:"id"`
	Type    string `json:"type"`
	Title   string `json:"title"`
	GridPos *struct {
		X, Y, W, H int
	} `json:"gridPos"`
	Targets []struct {
		Expr   string `json:"expr"`
		RefID  string `json:"refId"`
		Format string `json:"format"`
	} `json:"targets"`
	Panels      []panel `json:"panels"`
	FieldConfig struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
}

type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

// Every query of the Grafana dashboard selects only metrics synq exports,
// with labels they have, and the dashboard shows what it promises.
func TestDashboardUsesExportedMetrics(t *testing.T) {
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	if d.UID == "" || d.Title == "" || d.SchemaVersion == 0 {
		t.Errorf("dashboard lacks uid, title or schemaVersion")
	}
	exported := exportedNames(t)
	extra := map[string]bool{"instance": true, "job": true}

	check := func(where, expr string) []string {
		names := metricNames(expr)
		if len(names) == 0 {
			t.Errorf("%s: %q selects no metric", where, expr)
		}
		for _, n := range names {
			if _, ok := exported[n]; !ok {
				t.Errorf("%s: %q uses %s, which synq does not export", where, expr, n)
			}
		}
		for _, sel := range reSelector.FindAllStringSubmatch(expr, -1) {
			labels, ok := exported[sel[1]]
			if !ok {
				continue
			}
			for _, m := range reMatcher.FindAllStringSubmatch(sel[2], -1) {
				if !extra[m[1]] && !slices.Contains(labels, m[1]) {
					t.Errorf("%s: %q matches label %s, which %s does not have (%v)", where, expr, m[1], sel[1], labels)
				}
			}
		}
		return names
	}

	used := map[string]bool{}
	var heatmap bool
	ids := map[int]bool{}
	var walk func(ps []panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel id %d used twice", p.ID)
			}
			ids[p.ID] = true
			if p.GridPos == nil {
				t.Errorf("panel %q has no gridPos", p.Title)
			}
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				// Drops and handshakes per second are events, not
				// requests: Grafana's counts/sec.
				if strings.Contains(tg.Expr, "rate(synq_") && strings.Contains(tg.Expr, "drops_total") && p.FieldConfig.Defaults.Unit != "cps" {
					t.Errorf("panel %q charts drops per second in unit %q, want cps", p.Title, p.FieldConfig.Defaults.Unit)
				}
				for _, n := range check("panel "+p.Title, tg.Expr) {
					used[n] = true
					if p.Type == "heatmap" && n == "synq_accept_latency_seconds_bucket" && tg.Format == "heatmap" {
						heatmap = true
					}
				}
			}
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := reLabelVal.FindStringSubmatch(v.Definition)
		if m == nil {
			t.Errorf("variable %s: %q is not label_values(selector, label)", v.Name, v.Definition)
			continue
		}
		for _, n := range check("variable "+v.Name, m[1]) {
			if !extra[m[2]] && !slices.Contains(exported[n], m[2]) {
				t.Errorf("variable %s: %s has no label %s", v.Name, n, m[2])
			}
		}
	}
	for _, want := range []string{"synq_listen_drops_total", "synq_accept_queue_length", "synq_accept_queue_max", "synq_scrape_source_errors_total",
		"synq_syn_queue_length", "synq_accept_latency_seconds_bucket", "synq_reconcile_coverage_ratio", "synq_events_lost_total"} {
		if !used[want] {
			t.Errorf("no panel shows %s", want)
		}
	}
	if !heatmap {
		t.Errorf("no heatmap panel of synq_accept_latency_seconds_bucket (format heatmap)")
	}
	var unused []string
	for n := range exported {
		if !used[n] && !strings.HasSuffix(n, "_sum") && !strings.HasSuffix(n, "_count") {
			unused = append(unused, n)
		}
	}
	sort.Strings(unused)
	t.Logf("exported but not on the dashboard: %v", unused)
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	return d
}

func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

var reOuterBy = regexp.MustCompile(`^\s*sum by \(([^()]*)\)`)

// The "kernel vs synq" panel compares the same scope: per network
// namespace, the kernel's ListenDrops of a namespace against synq's sum over
// the listeners of that namespace, both restricted by the same selection of
// namespaces (it used to plot one namespace's kernel counter against synq's
// sum over every namespace).
func TestDashboardKernelVsSynqSameScope(t *testing.T) {
	d := readDashboard(t)
	var found bool
	for _, p := range allPanels(d.Panels) {
		if !strings.Contains(p.Title, "kernel vs synq") {
			continue
		}
		found = true
		if len(p.Targets) != 2 {
			t.Fatalf("panel %q: %d queries, want the kernel's and synq's", p.Title, len(p.Targets))
		}
		var kernel, synq string
		for _, tg := range p.Targets {
			names := metricNames(tg.Expr)
			switch {
			case slices.Contains(names, "synq_kernel_netstat_total") && !slices.Contains(names, "synq_listen_drops_total"):
				kernel = tg.Expr
			case slices.Contains(names, "synq_listen_drops_total") && !slices.Contains(names, "synq_kernel_netstat_total"):
				synq = tg.Expr
			}
		}
		if kernel == "" || synq == "" {
			t.Fatalf("panel %q: want one query of synq_kernel_netstat_total and one of synq_listen_drops_total: %v", p.Title, p.Targets)
		}
		if !strings.Contains(kernel, `name="TcpExt_ListenDrops"`) {
			t.Errorf("kernel side %q is not ListenDrops", kernel)
		}
		scope := func(expr string) (by []string, join string) {
			m := reOuterBy.FindStringSubmatch(expr)
			if m == nil {
				t.Errorf("%q: not a sum by the namespace", expr)
				return nil, ""
			}
			for _, l := range strings.Split(m[1], ",") {
				by = append(by, strings.TrimSpace(l))
			}
			sort.Strings(by)
			_, join, _ = strings.Cut(expr, "group_left")
			return by, join
		}
		kb, kj := scope(kernel)
		sb, sj := scope(synq)
		if !slices.Contains(kb, "netns") || !slices.Equal(kb, sb) {
			t.Errorf("kernel summed by %v, synq by %v: want the same grouping, with netns", kb, sb)
		}
		if kj == "" || kj != sj || !strings.Contains(kj, "synq_netns_info") {
			t.Errorf("kernel restricted by %q, synq by %q: want the same synq_netns_info selection", kj, sj)
		}
	}
	if !found {
		t.Fatal(`no "kernel vs synq" panel`)
	}
}

// The namespace and pod variables exist and every panel of listener series
// honours them.
func TestDashboardPodVariables(t *testing.T) {
	d := readDashboard(t)
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Definition
	}
	for _, v := range []string{"namespace", "pod"} {
		if !strings.Contains(vars[v], ", "+v+")") {
			t.Errorf("variable %s: %q, want label_values(..., %s)", v, vars[v], v)
		}
	}
	honours := func(sel string) bool {
		return strings.Contains(sel, `namespace=~"$namespace"`) && strings.Contains(sel, `pod=~"$pod"`)
	}
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			sels := reSelector.FindAllStringSubmatch(tg.Expr, -1)
			// A query restricted through synq_netns_info (per namespace,
			// as the kernel's counters are) is scoped by it.
			scoped := false
			for _, sel := range sels {
				if sel[1] == "synq_netns_info" {
					if !honours(sel[2]) {
						t.Errorf("panel %q: %s%s ignores the namespace or pod variable", p.Title, sel[1], sel[2])
					}
					scoped = true
				}
			}
			for _, sel := range sels {
				if !scoped && strings.Contains(sel[2], `netns=~"$netns"`) && !honours(sel[2]) {
					t.Errorf("panel %q: %s%s ignores the namespace or pod variable", p.Title, sel[1], sel[2])
				}
			}
		}
	}
}
