package kerneltest

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// A test that calls Root without the TestKernel prefix fails, root or not:
// the matrix and -skip ^TestKernel would otherwise misfile it. Run in a child
// test binary, where it is expected to fail.
func TestRootRejectsMisnamedTest(t *testing.T) {
	if os.Getenv("KERNELTEST_CHILD") == "1" {
		Root(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestRootRejectsMisnamedTest$", "-test.count=1")
	cmd.Env = append(os.Environ(), "KERNELTEST_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "TestRootRejectsMisnamedTest needs root: its name must start with TestKernel") {
		t.Errorf("misnamed test calling Root: err %v, output %q; want a failure naming the rule", err, out)
	}
}

// A test named by the rule gets past the name check: it runs as root and
// skips with the reason otherwise.
func TestKernelRoot(t *testing.T) {
	Root(t)
	if os.Geteuid() != 0 {
		t.Fatal("Root did not skip a test run without root")
	}
}

func TestTierArgs(t *testing.T) {
	t.Setenv(TierEnv, "")
	if a := TierArgs(); a != nil {
		t.Errorf("TierArgs() without %s = %q, want none", TierEnv, a)
	}
	t.Setenv(TierEnv, "kprobe")
	if a := strings.Join(TierArgs(), " "); a != "--tier kprobe" {
		t.Errorf("TierArgs() = %q, want \"--tier kprobe\"", a)
	}
}
