package kerneltest

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"sync"
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

// Synq is the running test binary as `synq args` (split on spaces), with the
// environment plus env; prefix, if any, runs it through a wrapper
// (setpriv, unshare, ...) whose last argument must be the binary:
// Synq("stats", nil, "setpriv", "--bounding-set=-all").
func Synq(args string, env []string, prefix ...string) *exec.Cmd {
	var cmd *exec.Cmd
	if len(prefix) > 0 {
		cmd = exec.Command(prefix[0], append(prefix[1:], os.Args[0])...)
	} else {
		cmd = exec.Command(os.Args[0])
	}
	cmd.Env = append(append(os.Environ(), MainArgsEnv+"="+args), env...)
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
