package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The test binary doubles as synq when SYNQ_TEST_MAIN_ARGS is set, so tests
// can run it in another process under other credentials.
func TestMain(m *testing.M) {
	if args, ok := os.LookupEnv("SYNQ_TEST_MAIN_ARGS"); ok {
		os.Exit(run(append([]string{"synq"}, strings.Fields(args)...)))
	}
	os.Exit(m.Run())
}

// Without CAP_BPF and CAP_PERFMON synq says which capabilities it needs, in
// one line, and exits 1.
func TestMissingCapabilities(t *testing.T) {
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) not installed")
	}
	for _, args := range []string{"trace --duration 1s", "listeners"} {
		t.Run(args, func(t *testing.T) {
			// Root without any capability: the bounding set is emptied
			// before exec, so nothing is regained.
			cmd := exec.Command(setpriv, "--inh-caps=-all", "--bounding-set=-all", os.Args[0])
			cmd.Env = append(os.Environ(), "SYNQ_TEST_MAIN_ARGS="+args)
			out, err := cmd.CombinedOutput()
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != 1 {
				t.Fatalf("exit %v, want 1; output %q", err, out)
			}
			s := strings.TrimSpace(string(out))
			if strings.Contains(s, "\n") || !strings.Contains(s, "CAP_BPF") || !strings.Contains(s, "CAP_PERFMON") {
				t.Errorf("output %q: want one line naming CAP_BPF and CAP_PERFMON", s)
			}
		})
	}
}
