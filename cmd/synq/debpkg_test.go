package main

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"
)

// debianBinary finds bin, installing the Debian package pkg where that
// cannot start a system service (no systemd running: CI, a container).
// Where systemd runs (a developer's machine: prometheus, nginx, containerd
// would start as services) the test skips and names the package.
func debianBinary(t *testing.T, bin, pkg string) string {
	t.Helper()
	if p, err := exec.LookPath(bin); err == nil {
		return p
	}
	if _, err := os.Stat("/run/systemd/system"); err == nil {
		t.Skipf("%s not installed; installing the Debian package here could start a system service: apt-get install %s first", bin, pkg)
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		t.Skipf("%s not installed and no apt-get", bin)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "apt-get", "install", "-y", "-qq", pkg)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("%s not installed and apt-get install %s failed: %v\n%s", bin, pkg, err, out)
	}
	p, err := exec.LookPath(bin)
	if err != nil {
		t.Skipf("apt-get install %s left no %s binary", pkg, bin)
	}
	return p
}
