package netstat

import (
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// `make fuzz` (and `make test-host`'s 10 s run of each target) bounds the
// minimisation of new inputs: at go test's default of 60 s per input the
// run shows 0 execs/s while it minimises, and a 25 s FuzzParse run did 34
// execs. The bound must leave the run fuzzing: at most 10000 calls or 1 s.
func TestMakeFuzzBoundsMinimization(t *testing.T) {
	mk, err := exec.LookPath("make")
	if err != nil {
		t.Skip("make is not installed")
	}
	out, err := exec.Command(mk, "-n", "--no-print-directory", "-C", "../..", "fuzz", "FUZZTIME=10s").CombinedOutput()
	if err != nil {
		t.Fatalf("make -n fuzz: %v\n%s", err, out)
	}
	var run string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, " -fuzz ") {
			run = l
		}
	}
	if run == "" {
		t.Fatalf("no `go test -fuzz` command in make -n fuzz:\n%s", out)
	}
	m := regexp.MustCompile(`-fuzzminimizetime[ =](\S+)`).FindStringSubmatch(run)
	if m == nil {
		t.Fatalf("make fuzz runs %q: no -fuzzminimizetime, so each new input is minimised for up to 60s", strings.TrimSpace(run))
	}
	if n, ok := strings.CutSuffix(m[1], "x"); ok {
		if calls, err := strconv.Atoi(n); err != nil || calls < 0 || calls > 10000 {
			t.Errorf("-fuzzminimizetime %s: want at most 10000x", m[1])
		}
		return
	}
	if d, err := time.ParseDuration(m[1]); err != nil || d > time.Second {
		t.Errorf("-fuzzminimizetime %s: want at most 1s (or a count, Nx)", m[1])
	}
}
