package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// cpuClock measures the CPU time a run costs. With a cgroup (v1 cpuacct or
// v2 cpu.stat) holding synqbench and every process it starts (servers,
// clients, `synq`, bpftrace), it is that cgroup's CPU time: the softirqs of
// loopback traffic run in the sending task (no CONFIG_IRQ_TIME_ACCOUNTING:
// they are charged to it), so the BPF programs' runs are in it, and the
// other tenants of a shared machine are not. Without one it is the
// machine's busy time (/proc/stat), which counts everyone's.
type cpuClock struct {
	usage   string // cpuacct.usage or cpu.stat of our cgroup, "" = /proc/stat
	dir     string
	leaveTo string // the parent's cgroup.procs
	what    string
}

// newCPUClock moves this process into a cgroup of its own; its children
// inherit it.
func newCPUClock() *cpuClock {
	pid := []byte(strconv.Itoa(os.Getpid()))
	for _, c := range []struct{ root, usage string }{
		{"/sys/fs/cgroup/cpuacct", "cpuacct.usage"},
		{"/sys/fs/cgroup/unified", "cpu.stat"},
		{"/sys/fs/cgroup", "cpu.stat"},
	} {
		if _, err := os.Stat(filepath.Join(c.root, c.usage)); err != nil && c.usage == "cpuacct.usage" {
			continue
		}
		if _, err := os.Stat(filepath.Join(c.root, "cgroup.procs")); err != nil {
			continue
		}
		dir := filepath.Join(c.root, fmt.Sprintf("synqbench-%d", os.Getpid()))
		if err := os.Mkdir(dir, 0o755); err != nil {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), pid, 0o644); err != nil {
			os.Remove(dir)
			continue
		}
		k := &cpuClock{usage: filepath.Join(dir, c.usage), dir: dir, leaveTo: filepath.Join(c.root, "cgroup.procs")}
		// A new cgroup's usage starts at 0: only an unreadable one fails.
		if _, err := os.ReadFile(k.usage); err != nil {
			k.close()
			continue
		}
		k.what = fmt.Sprintf("CPU time of synqbench's own cgroup (%s: the workload's servers and clients, the tracer, every process started for a run)", k.usage)
		return k
	}
	return &cpuClock{what: "the machine's busy CPU time (/proc/stat user+nice+system+irq+softirq: every process, other tenants included)"}
}

// nowNs is the CPU time so far, in ns.
func (k *cpuClock) nowNs() uint64 {
	if k.usage == "" {
		return busyTicks() * (1e9 / clockTicks)
	}
	b, err := os.ReadFile(k.usage)
	if err != nil {
		return 0
	}
	s := strings.TrimSpace(string(b))
	if strings.HasSuffix(k.usage, "cpu.stat") {
		for _, l := range strings.Split(s, "\n") {
			if v, ok := strings.CutPrefix(l, "usage_usec "); ok {
				us, _ := strconv.ParseUint(v, 10, 64)
				return us * 1000
			}
		}
		return 0
	}
	ns, _ := strconv.ParseUint(s, 10, 64)
	return ns
}

// close moves this process back and removes the cgroup.
func (k *cpuClock) close() {
	if k.dir == "" {
		return
	}
	_ = os.WriteFile(k.leaveTo, []byte(strconv.Itoa(os.Getpid())), 0o644)
	_ = os.Remove(k.dir)
}

// clock is the run's CPU clock (set in run).
var clock = &cpuClock{}

// serveAddr is where the synq-serve modes listen.
var serveAddr = freeAddr()

// freeAddr is a loopback address whose port was free a moment ago.
func freeAddr() string {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return "127.0.0.1:19187"
	}
	defer l.Close()
	return l.Addr().String()
}
