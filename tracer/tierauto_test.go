package tracer_test

import (
	"os"
	"strings"
	"testing"

	"github.com/synq-trace/synq/internal/kerneltest"
	"github.com/synq-trace/synq/internal/render"
	"github.com/synq-trace/synq/tracer"
)

// ExpectTierEnv names the tier the automatic choice must end on: the kernel
// VM matrix's auto cells set it (with SYNQ_TEST_TIER=auto) to the best tier
// its table of refusals (vm/refusals) leaves that kernel.
const ExpectTierEnv = "SYNQ_TEST_EXPECT_TIER"

// --tier auto falls back past every tier the kernel refuses (fentry on arm64
// before 6.12) to the expected one, keeps the kernel's reason for each, and
// synq's tier report says it.
func TestKernelTierAuto(t *testing.T) {
	want := os.Getenv(ExpectTierEnv)
	if os.Getenv(kerneltest.TierEnv) != "auto" || want == "" {
		t.Skipf("runs in the matrix's auto cells only (%s=auto, %s)", kerneltest.TierEnv, ExpectTierEnv)
	}
	info := kerneltest.Open(t, tracer.Config{}).Info()
	if string(info.Tier) != want {
		t.Fatalf("auto picked tier %s, want %s (skipped: %v)", info.Tier, want, info.Skipped)
	}
	var report strings.Builder
	render.ReportTier(&report, info, false)
	t.Logf("synq says:\n%s", report.String())
	for _, better := range tracer.Tiers {
		if better == info.Tier {
			break
		}
		err := info.Skipped[better]
		if err == nil || err.Error() == "" {
			t.Errorf("tier %s is better than %s but was not skipped with a reason: %v", better, info.Tier, info.Skipped)
			continue
		}
		if line := "synq: skipped tier " + string(better) + ": " + err.Error(); !strings.Contains(report.String(), line) {
			t.Errorf("the tier report does not say %q", line)
		}
	}
	for skipped := range info.Skipped {
		if !tierBetter(skipped, info.Tier) {
			t.Errorf("tier %s skipped, though not better than %s", skipped, info.Tier)
		}
	}
}

func tierBetter(a, b tracer.Tier) bool {
	for _, t := range tracer.Tiers {
		if t == a {
			return t != b
		}
		if t == b {
			return false
		}
	}
	return false
}
