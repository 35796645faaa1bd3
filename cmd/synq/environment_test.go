package main

// Bad environment (issue #8): a procfs whose counter files are malformed or
// unreadable, and no bpffs. synq runs as its own process (see TestMain) in a
// private mount namespace, so the host's mounts are never touched.

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/synq-trace/synq/internal/kerneltest"
)

// fakeProcScript replaces /proc, in the private mount namespace unshare(1)
// made, with a tmpfs whose thread-self/net holds the files of $SRC. synq
// reads the counters of its own netns from /proc/thread-self/net, and a
// bind mount over /proc/net/netstat would not do: every thread has its own
// /proc/PID/task/TID/net dentries. What else synq reads there (the netns
// inode through thread-self/ns and PID/ns) leads to a real procfs mounted at
// /proc/real inside the tmpfs. The last step execs synq, keeping the shell's
// PID.
const fakeProcScript = `set -e
mount -t tmpfs -o mode=0755 tmpfs /proc
mkdir /proc/real /proc/fake
mount -t proc proc /proc/real
cp -a "$SRC" /proc/fake/net
ln -s /proc/real/thread-self/ns /proc/fake/ns
ln -s fake /proc/thread-self
ln -s fake /proc/self
ln -s fake /proc/$$
exec "$@"
`

func requireUnshare(t *testing.T) (unshare, setpriv string) {
	t.Helper()
	kerneltest.Root(t)
	var err error
	if unshare, err = exec.LookPath("unshare"); err != nil {
		t.Skip("unshare (util-linux) not installed")
	}
	if setpriv, err = exec.LookPath("setpriv"); err != nil {
		t.Skip("setpriv (util-linux) not installed")
	}
	return unshare, setpriv
}

// runInMountNS runs `sh -c script sh argv...` in a private mount namespace
// with env added, and returns synq's exit code, stdout and stderr.
func runInMountNS(t *testing.T, unshare, script string, env []string, argv ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(unshare, append([]string{"--mount", "--propagation", "private", "sh", "-c", script, "sh"}, argv...)...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("run %v: %v", argv, err)
		}
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

// Counter files that are malformed, missing or unreadable: `synq stats`
// says which file and why in one line and exits 1, never panics. synq runs
// as root without any capability (stats needs none), so a file of mode 000
// is unreadable to it as to any other user.
func TestKernelBadProcfs(t *testing.T) {
	unshare, setpriv := requireUnshare(t)
	real := map[string][]byte{}
	for _, f := range []string{"netstat", "snmp", "snmp6"} {
		b, err := os.ReadFile("/proc/net/" + f)
		if err != nil {
			t.Fatal(err)
		}
		real[f] = b
	}
	netstat := string(real["netstat"])
	for _, c := range []struct {
		name   string
		modify func(t *testing.T, dir string)
		want   string // "" for success
	}{
		{"real files", nil, ""},
		{"no snmp6 (IPv6 disabled at boot)", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "snmp6"))
		}, ""},
		{"netstat value not a number", func(t *testing.T, dir string) {
			// The first value of the TcpExt line becomes "x".
			lines := strings.SplitAfter(netstat, "\n")
			f := strings.SplitN(lines[1], " ", 3)
			lines[1] = f[0] + " x " + f[2]
			write(t, dir, "netstat", strings.Join(lines, ""))
		}, `parse /proc/thread-self/net/netstat: line 2: malformed counters file: TcpExt.`},
		{"netstat truncated after a header", func(t *testing.T, dir string) {
			write(t, dir, "netstat", strings.SplitAfter(netstat, "\n")[0])
		}, `parse /proc/thread-self/net/netstat: malformed counters file: line 1: "TcpExt" header has no value line`},
		{"netstat value out of range", func(t *testing.T, dir string) {
			lines := strings.SplitAfter(netstat, "\n")
			f := strings.SplitN(lines[1], " ", 3)
			lines[1] = f[0] + " 99999999999999999999999 " + f[2]
			write(t, dir, "netstat", strings.Join(lines, ""))
		}, "counter value out of range"},
		{"netstat binary garbage", func(t *testing.T, dir string) {
			write(t, dir, "netstat", "\x00\x01\xff\nTcpExt\x00: 1\n")
		}, `parse /proc/thread-self/net/netstat: malformed counters file: line 1: does not start with "Prefix:"`},
		{"snmp6 malformed", func(t *testing.T, dir string) {
			write(t, dir, "snmp6", "Ip6InReceives 1 2\n")
		}, `parse /proc/thread-self/net/snmp6: malformed counters file: line 1: want "Name value", got 3 fields`},
		{"netstat missing", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "netstat"))
		}, "read counters: open /proc/thread-self/net/netstat: no such file or directory"},
		{"netstat unreadable", func(t *testing.T, dir string) {
			if err := os.Chmod(filepath.Join(dir, "netstat"), 0); err != nil {
				t.Fatal(err)
			}
		}, "read counters: open /proc/thread-self/net/netstat: permission denied"},
		{"snmp unreadable", func(t *testing.T, dir string) {
			if err := os.Chmod(filepath.Join(dir, "snmp"), 0); err != nil {
				t.Fatal(err)
			}
		}, "read counters: open /proc/thread-self/net/snmp: permission denied"},
		{"netstat is a directory", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "netstat"))
			if err := os.Mkdir(filepath.Join(dir, "netstat"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, "read counters: read /proc/thread-self/net/netstat: is a directory"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "net")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for f, b := range real {
				write(t, dir, f, string(b))
			}
			if c.modify != nil {
				c.modify(t, dir)
			}
			code, stdout, stderr := runInMountNS(t, unshare, fakeProcScript,
				[]string{"SRC=" + dir, kerneltest.MainArgsEnv + "=stats --output json"},
				setpriv, "--inh-caps=-all", "--bounding-set=-all", os.Args[0])
			s := strings.TrimSpace(stderr)
			if strings.Contains(s, "panic") || strings.Contains(s, "goroutine ") {
				t.Fatalf("synq panicked: %s", s)
			}
			if c.want == "" {
				if code != 0 || !strings.Contains(stdout, `"name":"TcpExt.ListenDrops"`) {
					t.Fatalf("exit %d, stdout %.200q, stderr %q: want exit 0 and the counters", code, stdout, s)
				}
				return
			}
			if code != 1 {
				t.Errorf("exit %d, want 1 (stderr %q)", code, s)
			}
			if strings.Contains(s, "\n") || !strings.HasPrefix(s, "synq: counters of netns net:[") || !strings.Contains(s, c.want) {
				t.Errorf("stderr %q, want one line \"synq: counters of netns ...: ...%s...\"", s, c.want)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
		})
	}
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// noBPFFSScript unmounts every bpffs at /sys/fs/bpf in the private mount
// namespace (mounts can be stacked), checks none is left, and execs synq.
const noBPFFSScript = `set -e
while umount /sys/fs/bpf 2>/dev/null; do :; done
if grep -q ' /sys/fs/bpf ' /proc/self/mounts; then echo "bpffs still mounted" >&2; exit 99; fi
exec "$@"
`

// synq pins nothing, so it needs no bpffs: every BPF command works in a
// mount namespace without /sys/fs/bpf mounted.
func TestKernelNoBPFFS(t *testing.T) {
	unshare, _ := requireUnshare(t)
	for _, args := range []string{"trace --duration 1s", "listeners", "latency --duration 1s"} {
		t.Run(args, func(t *testing.T) {
			code, _, stderr := runInMountNS(t, unshare, noBPFFSScript,
				[]string{kerneltest.MainArgsEnv + "=" + args}, os.Args[0])
			if code != 0 {
				t.Fatalf("exit %d without bpffs, want 0; stderr %q", code, stderr)
			}
			if strings.Contains(stderr, "/sys/fs/bpf") || strings.Contains(stderr, "bpffs") {
				t.Errorf("stderr mentions bpffs: %q", stderr)
			}
		})
	}
}
