package validate

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// The systemd unit's hardening: what `systemd-analyze verify` (make
// check-deploy) cannot tell, since every directive is optional to it.
func TestSystemdHardening(t *testing.T) {
	b, err := os.ReadFile("../systemd/synq.service")
	if err != nil {
		t.Fatal(err)
	}
	service := map[string][]string{}
	section := ""
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = line
		case section == "[Service]":
			k, v, _ := strings.Cut(line, "=")
			service[k] = append(service[k], v)
		}
	}
	for k, want := range map[string]string{
		"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
		"PrivateDevices": "yes", "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
		"ProtectControlGroups": "yes", "RestrictSUIDSGID": "yes", "LockPersonality": "yes",
		"MemoryDenyWriteExecute": "yes", "SystemCallArchitectures": "native", "RestrictNamespaces": "net",
	} {
		if got := service[k]; len(got) != 1 || got[0] != want {
			t.Errorf("[Service] %s=%v, want %s", k, got, want)
		}
	}
	allowed := []string{"CAP_BPF", "CAP_PERFMON", "CAP_SYSLOG", "CAP_SYS_ADMIN", "CAP_SYS_PTRACE"}
	caps := strings.Fields(strings.Join(service["CapabilityBoundingSet"], " "))
	if len(caps) == 0 || strings.HasPrefix(caps[0], "~") {
		t.Errorf("CapabilityBoundingSet=%v: want the capabilities synq needs, listed", caps)
	}
	for _, c := range caps {
		if !slices.Contains(allowed, c) {
			t.Errorf("CapabilityBoundingSet has %s, which synq does not need (%v)", c, allowed)
		}
	}
	for _, c := range []string{"CAP_BPF", "CAP_PERFMON"} {
		if !slices.Contains(caps, c) {
			t.Errorf("CapabilityBoundingSet lacks %s", c)
		}
	}
	if len(service["AmbientCapabilities"]) > 0 || len(service["User"]) > 0 {
		t.Errorf("User=/AmbientCapabilities= set: synq runs as root limited by the bounding set (tracefs is root-only)")
	}
	if got := service["LimitMEMLOCK"]; len(got) != 1 || got[0] != "infinity" {
		t.Errorf("LimitMEMLOCK=%v, want infinity: kernels before 5.11 charge BPF maps to it, and CAP_SYS_RESOURCE is not in the bounding set", got)
	}
	// Arguments from an environment file, as packaged exporters do.
	if got := strings.Join(service["ExecStart"], " "); got != "/usr/local/bin/synq serve $SYNQ_ARGS" {
		t.Errorf("ExecStart=%s: want synq serve $SYNQ_ARGS", got)
	}
	if got := service["EnvironmentFile"]; len(got) != 1 || got[0] != "-/etc/default/synq" {
		t.Errorf("EnvironmentFile=%v: want -/etc/default/synq (optional: without it synq serves on loopback)", got)
	}
	args := defaultArgs(t)
	if !slices.Contains(args, "--web.listen-address=127.0.0.1:9464") {
		t.Errorf("synq.default SYNQ_ARGS=%v: want synq serve on loopback", args)
	}
	// Every flag in it is one synq serve has.
	if flags := serveFlags(t); flags != nil {
		for _, a := range args {
			name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
			if !strings.HasPrefix(a, "--") || !slices.Contains(flags, name) {
				t.Errorf("synq.default SYNQ_ARGS has %q: synq serve has no such flag (%v)", a, flags)
			}
		}
	}
}

// defaultArgs reads SYNQ_ARGS from deploy/systemd/synq.default: one
// assignment, double-quoted, words split on spaces as systemd splits $VAR.
func defaultArgs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../systemd/synq.default")
	if err != nil {
		t.Fatal(err)
	}
	var args []string
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || k != "SYNQ_ARGS" || len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
			t.Fatalf("synq.default: %q: want only SYNQ_ARGS=\"...\"", line)
		}
		args = strings.Fields(v[1 : len(v)-1])
		n++
	}
	if n != 1 {
		t.Fatalf("synq.default sets SYNQ_ARGS %d times, want once", n)
	}
	return args
}
