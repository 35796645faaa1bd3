package kerneltest

import (
	"os"
	"testing"

	"github.com/synq-trace/synq/tracer"
)

// The environment of the kernel VM matrix (vm/matrix.sh) and of a manual run:
//
//	SYNQ_TEST_TIER=fentry|kprobe|tracepoint  the tier under test (unset: the best available)
//	SYNQ_TEST_REQUIRE_TIER=1                 a tier the kernel refuses fails OpenRequired instead of skipping
const (
	TierEnv        = "SYNQ_TEST_TIER"
	RequireTierEnv = "SYNQ_TEST_REQUIRE_TIER"
)

// Tier is the tier under test: SYNQ_TEST_TIER, or the best available.
func Tier(tb testing.TB) tracer.Tier {
	tb.Helper()
	tier, err := tracer.ParseTier(os.Getenv(TierEnv))
	if err != nil {
		tb.Fatal(err)
	}
	return tier
}

// TierArgs are the CLI flags that select the tier under test: --tier
// SYNQ_TEST_TIER, or none.
func TierArgs() []string {
	if tier := os.Getenv(TierEnv); tier != "" {
		return []string{"--tier", tier}
	}
	return nil
}

// Open opens a tracer with cfg on the tier under test (cfg.Tier is set here),
// logs the tier and the hooks it could not attach, and closes it when tb
// ends. Skips unless root. A tier named by SYNQ_TEST_TIER that the kernel
// refuses skips tb with the kernel's reason (the matrix shows it); the
// tracepoint tier, or the best one, must open.
func Open(tb testing.TB, cfg tracer.Config) *tracer.Tracer {
	tb.Helper()
	return open(tb, cfg, false)
}

// OpenRequired is Open, except that under SYNQ_TEST_REQUIRE_TIER (the
// matrix sets it: its Debian kernels have every tier) a refused tier fails
// tb instead of skipping it.
func OpenRequired(tb testing.TB, cfg tracer.Config) *tracer.Tracer {
	tb.Helper()
	return open(tb, cfg, os.Getenv(RequireTierEnv) != "")
}

func open(tb testing.TB, cfg tracer.Config, require bool) *tracer.Tracer {
	tb.Helper()
	Root(tb)
	cfg.Tier = Tier(tb)
	tr, err := tracer.Open(cfg)
	if err != nil {
		if tier := os.Getenv(TierEnv); tier != "" && tier != "tracepoint" && !require {
			tb.Skipf("tier %s not available: %v", tier, err)
		}
		tb.Fatal(err)
	}
	tb.Cleanup(func() { tr.Close() })
	info := tr.Info()
	tb.Logf("tier %s on %s", info.Tier, info.Kernel)
	for _, h := range info.Hooks {
		if h.Err != nil {
			tb.Logf("hook %s (%s) not attached: %v", h.Program, h.Target, h.Err)
		}
	}
	return tr
}
