// Package kerneltest is the test environment of every test that needs root:
// the root check and the naming rule the kernel VM matrix selects by, private
// network namespaces with listeners (netlab), the attach tier under test,
// and the test binary run as the synq CLI.
//
// Naming: a test that needs root is named TestKernel<What>. Root fails a test
// named otherwise, root or not, so the rule holds by itself:
//
//	go test -run '^TestKernel' ./...    the tests that need root
//	go test -skip '^TestKernel' ./...   the ones that do not
//
// The VM matrix (vm/matrix.sh) runs -run Kernel in the packages whose tests
// depend on the attach tier (VM_PKGS: tracer, reconcile), once per tier.
//
// It is imported by tests (and synqbench, for Buffer); it is not a _test
// package so that tests of several packages share it.
package kerneltest

import (
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/synq-trace/synq/internal/netlab"
	"github.com/synq-trace/synq/internal/netns"
)

// Prefix starts the name of every test that needs root.
const Prefix = "TestKernel"

// Root skips tb unless it runs as root: tests that need root load BPF
// programs, create network namespaces or run synq. A test (not a benchmark)
// whose name does not start with Prefix fails, root or not.
func Root(tb testing.TB) {
	tb.Helper()
	if _, ok := tb.(*testing.T); ok && !strings.HasPrefix(tb.Name(), Prefix) {
		tb.Fatalf("%s needs root: its name must start with %s (go test -run ^TestKernel and the kernel VM matrix select by it)", tb.Name(), Prefix)
	}
	if os.Geteuid() != 0 {
		tb.Skip("needs root: loads BPF programs, creates network namespaces or runs synq (run the tests as root)")
	}
}

// Netns is a fresh anonymous network namespace with lo up and sysctls set
// in it, closed when tb ends. Skips unless root (see Root).
func Netns(tb testing.TB, sysctls map[string]string) *netlab.Netns {
	tb.Helper()
	Root(tb)
	ns, err := netlab.New("")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ns.Close() })
	for k, v := range sysctls {
		if err := ns.Sysctl(k, v); err != nil {
			tb.Fatal(err)
		}
	}
	return ns
}

// NamedNetns is a fresh namespace bind-mounted at /run/netns/NAME (one left
// by a killed run is deleted first), for commands given --netns NAME;
// deleted when tb ends. Skips unless root.
func NamedNetns(tb testing.TB, name string) *netlab.Netns {
	tb.Helper()
	Root(tb)
	_ = netlab.DeleteNamed(name)
	ns, err := netlab.New(name)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ns.Close() })
	return ns
}

var seq atomic.Int64

// NS is a fresh namespace named synq-test-PID-N, as the netns package
// resolves it, deleted when tb ends. Skips unless root.
func NS(tb testing.TB) netns.NS {
	tb.Helper()
	name := fmt.Sprintf("synq-test-%d-%d", os.Getpid(), seq.Add(1))
	NamedNetns(tb, name)
	ns, err := netns.Resolve(name)
	if err != nil {
		tb.Fatalf("resolve new netns %s: %v", name, err)
	}
	return ns
}

// Listen listens in ns with exactly backlog (see netlab.Listener) until tb
// ends.
func Listen(tb testing.TB, ns *netlab.Netns, network, addr string, backlog int, opts ...netlab.SockOpt) *netlab.Listener {
	tb.Helper()
	l, err := ns.Listen(network, addr, backlog, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	return l
}
