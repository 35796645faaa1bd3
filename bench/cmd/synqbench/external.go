package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/synq-trace/synq/internal/kerneltest"
)

// runExternal runs the churn under a tracer started as a separate process
// (`synq trace`, `synq serve`, bpftrace). It is ready when its output holds
// ready, or after -settle when ready is "". Kernel cost is read with bpftool
// for the programs the process loaded: we have no fd of them.
func runExternal(c config, w workload, x *run1, argv []string, ready string) error {
	pre, err := bpftoolStats()
	if err != nil {
		return err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	var out, errb kerneltest.Buffer // a child's output, polled while it runs
	if ready != "" {
		cmd.Stdout = &out
	} // else /dev/null: `synq trace -o json > /dev/null`
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() error {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case err := <-exited:
			return err
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			return <-exited
		}
	}
	deadline := time.Now().Add(c.settle)
	if ready != "" {
		deadline = time.Now().Add(20 * time.Second)
	}
	for time.Now().Before(deadline) {
		if ready != "" && strings.Contains(out.String(), ready) {
			break
		}
		select {
		case err := <-exited:
			return fmt.Errorf("%s exited before the run (%v): %s", argv[0], err, lastLine(errb.String()))
		case <-time.After(50 * time.Millisecond):
		}
	}
	if ready != "" && !strings.Contains(out.String(), ready) {
		stop()
		return fmt.Errorf("%s not ready after 20s: %s", argv[0], lastLine(errb.String()))
	}
	before, err := bpftoolStats()
	if err != nil {
		stop()
		return err
	}
	p0 := procCPUNs(cmd.Process.Pid)
	x.connS, x.overflows, x.cpu = w.run(c.dur)
	if p1 := procCPUNs(cmd.Process.Pid); p0 > 0 && p1 >= p0 {
		x.procNs = p1 - p0
	}
	after, _ := bpftoolStats()
	mine := progIDsOf(cmd.Process.Pid)
	if err := stop(); err != nil {
		// Asked to stop with SIGINT: an exit status is expected, only a
		// failure to wait is an error.
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return err
		}
	}
	x.progs = map[string]progNs{}
	for id, a := range after {
		if _, old := pre[id]; old || !mine[id] {
			continue // not this process's: other tests may load BPF too
		}
		b := before[id]
		x.progs[a.Name] = progNs{runs: a.RunCnt - b.RunCnt, ns: time.Duration(a.RunTimeNs - b.RunTimeNs)}
	}
	return nil
}

// procCPUNs is the CPU time a process's threads have run, in ns (the sum
// of /proc/PID/task/*/schedstat's first field); 0 when unreadable.
func procCPUNs(pid int) uint64 {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0
	}
	var sum uint64
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if err != nil {
			continue // a thread that exited
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseUint(f[0], 10, 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}

type bpfProg struct {
	ID        uint32 `json:"id"`
	Name      string `json:"name"`
	Type      string `json:"type"`
	RunTimeNs uint64 `json:"run_time_ns"`
	RunCnt    uint64 `json:"run_cnt"`
}

// bpftoolStats lists every loaded BPF program with its run statistics.
func bpftoolStats() (map[uint32]bpfProg, error) {
	b, err := exec.Command("bpftool", "-j", "prog", "show").Output()
	if err != nil {
		return nil, fmt.Errorf("bpftool prog show: %w", err)
	}
	var ps []bpfProg
	if err := json.Unmarshal(b, &ps); err != nil {
		return nil, fmt.Errorf("bpftool prog show: %w", err)
	}
	m := map[uint32]bpfProg{}
	for _, p := range ps {
		m[p.ID] = p
	}
	return m, nil
}

// progIDsOf returns the ids of the BPF programs process pid holds an fd of
// (fdinfo "prog_id:"), so programs loaded by anything else are left out.
func progIDsOf(pid int) map[uint32]bool {
	ids := map[uint32]bool{}
	dir := fmt.Sprintf("/proc/%d/fdinfo", pid)
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		b, err := os.ReadFile(dir + "/" + e.Name())
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "prog_id:"); ok {
				if id, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32); err == nil {
					ids[uint32(id)] = true
				}
			}
		}
	}
	return ids
}
