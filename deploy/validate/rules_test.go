package validate

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"sigs.k8s.io/yaml"
)

const (
	rulesFile     = "../prometheus/synq-rules.yml"
	rulesTestFile = "../prometheus/synq-rules_test.yml"
	runbook       = "../../docs/runbook.md"
)

// ruleFile is a Prometheus rule file, decoded strictly.
type ruleFile struct {
	Groups []monitoringv1.RuleGroup `json:"groups"`
}

func loadRules(t *testing.T) ruleFile {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	if err := yaml.UnmarshalStrict(b, &rf); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	return rf
}

func alerts(groups []monitoringv1.RuleGroup) []monitoringv1.Rule {
	var out []monitoringv1.Rule
	for _, g := range groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				out = append(out, r)
			}
		}
	}
	return out
}

// The PrometheusRule manifest carries exactly the rule file's groups.
func TestPrometheusRuleMatchesRuleFile(t *testing.T) {
	rf := loadRules(t)
	objs, err := Load(manifests)
	if err != nil {
		t.Fatal(err)
	}
	var pr *monitoringv1.PrometheusRule
	for _, o := range objs {
		if v, ok := o.Obj.(*monitoringv1.PrometheusRule); ok {
			pr = v
		}
	}
	if pr == nil {
		t.Fatal("no PrometheusRule in deploy/kubernetes")
	}
	a, _ := json.Marshal(rf.Groups)
	b, _ := json.Marshal(pr.Spec.Groups)
	if !reflect.DeepEqual(rf.Groups, pr.Spec.Groups) {
		t.Errorf("the PrometheusRule's groups differ from %s:\nfile:     %s\nmanifest: %s", rulesFile, a, b)
	}
	if n := len(alerts(rf.Groups)); n < 6 {
		t.Errorf("%d alerts in %s", n, rulesFile)
	}
}

// promtool checks the rule file and runs its unit tests; every alert has a
// case where it fires and one where it stays silent.
func TestRulesPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian package prometheus; installing it here would start its service)")
	}
	for _, args := range [][]string{{"check", "rules", filepath.Base(rulesFile)}, {"test", "rules", filepath.Base(rulesTestFile)}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = filepath.Dir(rulesFile)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

func TestRulesUnitTestsCoverEveryAlert(t *testing.T) {
	b, err := os.ReadFile(rulesTestFile)
	if err != nil {
		t.Fatal(err)
	}
	var tf struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string            `json:"alertname"`
				ExpAlerts []json.RawMessage `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	if err := yaml.Unmarshal(b, &tf); err != nil {
		t.Fatal(err)
	}
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, tc := range tf.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				silent[a.Alertname] = true
			}
		}
	}
	for _, r := range alerts(loadRules(t).Groups) {
		if !fires[r.Alert] || !silent[r.Alert] {
			t.Errorf("%s: a unit test where it fires %v, where it stays silent %v: want both", r.Alert, fires[r.Alert], silent[r.Alert])
		}
	}
}

// Every alert names its listener or instance, links to a section of
// docs/runbook.md that exists and tells the operator to run synq doctor.
func TestRulesRunbook(t *testing.T) {
	b, err := os.ReadFile(runbook)
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]string{}
	var cur string
	for _, line := range strings.Split(string(b), "\n") {
		if h, ok := strings.CutPrefix(line, "## "); ok {
			cur = slug(h)
			anchors[cur] = ""
			continue
		}
		if cur != "" {
			anchors[cur] += line + "\n"
		}
	}
	for _, r := range alerts(loadRules(t).Groups) {
		url := r.Annotations["runbook_url"]
		_, frag, ok := strings.Cut(url, "docs/runbook.md#")
		if !ok {
			t.Errorf("%s: runbook_url %q is not a docs/runbook.md section", r.Alert, url)
			continue
		}
		sec, ok := anchors[frag]
		switch {
		case !ok:
			t.Errorf("%s: docs/runbook.md has no section #%s", r.Alert, frag)
		case !strings.Contains(sec, "synq doctor"):
			t.Errorf("%s: its runbook section does not say which synq doctor to run", r.Alert)
		case !strings.Contains(sec, "Threshold"):
			t.Errorf("%s: its runbook section does not give its threshold", r.Alert)
		}
		if r.Annotations["summary"] == "" || r.Labels["severity"] == "" {
			t.Errorf("%s: no summary or severity", r.Alert)
		}
	}
}

var nonSlug = regexp.MustCompile(`[^a-z0-9 -]`)

// slug is GitHub's anchor of a heading.
func slug(h string) string {
	return strings.ReplaceAll(nonSlug.ReplaceAllString(strings.ToLower(strings.TrimSpace(h)), ""), " ", "-")
}
