package kerneltest

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// MainArgsEnv makes the test binary of cmd/synq run as synq with these
// arguments (its TestMain calls MainArgs), so tests can run synq in another
// process: under other credentials, in a terminal, killed by a signal.
const MainArgsEnv = "SYNQ_TEST_MAIN_ARGS"

// MainArgs are the synq arguments the test binary was started with by
// Synq, and whether it was.
func MainArgs() ([]string, bool) {
	args, ok := os.LookupEnv(MainArgsEnv)
	return strings.Fields(args), ok
}

// Synq is the running test binary as `synq args` (split on spaces); prefix,
// if any, runs it through a wrapper (setpriv, unshare, ...) that takes the
// binary as its last argument: Synq("stats", "setpriv", "--bounding-set=-all").
func Synq(args string, prefix ...string) *exec.Cmd {
	var cmd *exec.Cmd
	if len(prefix) > 0 {
		cmd = exec.Command(prefix[0], append(prefix[1:], os.Args[0])...)
	} else {
		cmd = exec.Command(os.Args[0])
	}
	cmd.Env = append(os.Environ(), MainArgsEnv+"="+args)
	return cmd
}

// Buffer is a bytes.Buffer that a command's output copier writes while the
// test reads it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Proc is a command (usually Synq) running in another process, its output
// collected as it comes.
type Proc struct {
	Cmd            *exec.Cmd
	Stdout, Stderr Buffer
	done           chan struct{}
	err            error
}

// Start starts cmd with its output in Stdout and Stderr. It is killed, if
// still running, when tb ends.
func Start(tb testing.TB, cmd *exec.Cmd) *Proc {
	tb.Helper()
	p := &Proc{Cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &p.Stdout, &p.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	tb.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// Attached waits until synq has said on stderr which tier it attached, as
// every tracing command does once its programs run. It returns false if the
// process exited first, and fails tb after timeout.
func (p *Proc) Attached(tb testing.TB, timeout time.Duration) bool {
	tb.Helper()
	deadline := time.After(timeout)
	for !strings.Contains(p.Stderr.String(), " tier on Linux ") {
		select {
		case <-p.done:
			return false
		case <-deadline:
			tb.Fatalf("%s did not attach in %s; stderr %q", p, timeout, p.Stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return true
}

// Wait waits for the process to exit and returns its exit code (-1: killed
// by a signal). After timeout it kills the process and fails tb.
func (p *Proc) Wait(tb testing.TB, timeout time.Duration) int {
	tb.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.Cmd.Process.Kill()
		<-p.done
		tb.Fatalf("%s did not exit within %s; stderr %q", p, timeout, p.Stderr.String())
	}
	return p.Cmd.ProcessState.ExitCode()
}

// Err is what waiting for the process returned, once it has exited.
func (p *Proc) Err() error {
	<-p.done
	return p.err
}

func (p *Proc) String() string {
	if args, ok := lookupEnv(p.Cmd.Env, MainArgsEnv); ok {
		return "synq " + args
	}
	return strings.Join(p.Cmd.Args, " ")
}

func lookupEnv(env []string, key string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], key+"="); ok {
			return v, true
		}
	}
	return "", false
}
