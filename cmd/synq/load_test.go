package main

// Issue #12 item 3: --btf on what cannot be a BTF file is one line and exit
// 2, at once, and Ctrl-C works during every load.

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/synq-trace/synq/internal/kerneltest"
)

// Each command that loads BTF, run as its own process on a device or a
// FIFO: before the fix /dev/zero grew to GBs and a FIFO blocked forever, both
// deaf to SIGINT. Whatever is still running after a second gets SIGINT, and
// must be gone 5 s later; it must have refused the file in one line with
// exit 2.
func TestBTFNotAFile(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "btf.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args, want string
	}{
		{"trace --btf /dev/zero", "/dev/zero is a device"},
		{"trace --btf " + fifo, "is a FIFO"},
		{"listeners --btf " + fifo, "is a FIFO"},
		{"top --once --btf /dev/urandom", "/dev/urandom is a device"},
		{"serve --listen 127.0.0.1:0 --btf " + fifo, "is a FIFO"},
		{"latency --btf " + filepath.Dir(fifo), "is a directory"},
	} {
		t.Run(c.args, func(t *testing.T) {
			var stderr kerneltest.Buffer
			cmd := kerneltest.Synq(c.args)
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(time.Second):
				cmd.Process.Signal(os.Interrupt)
				select {
				case <-done:
					t.Errorf("still loading 1s after start; exited on SIGINT")
				case <-time.After(5 * time.Second):
					cmd.Process.Kill()
					<-done
					t.Fatalf("still running 5s after SIGINT (killed); stderr %q", stderr.String())
				}
			}
			code := cmd.ProcessState.ExitCode()
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			if code != 2 || len(lines) != 1 || !strings.Contains(lines[0], "invalid --btf") || !strings.Contains(lines[0], c.want) {
				t.Errorf("exit %d, stderr %q: want exit 2 and one line \"synq: invalid --btf: ...%s...\"", code, stderr.String(), c.want)
			}
		})
	}
}
