package main

// Hardening (issue #8): synq run as its own process, stopped by SIGINT,
// SIGTERM, SIGHUP or SIGKILL, leaves no BPF program or map in the kernel;
// two synq processes may trace at once.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/synq-trace/synq/internal/kerneltest"
	"github.com/synq-trace/synq/internal/netlab"
)

// hardStartSynq runs this test binary as synq (see TestMain) and waits
// until it has attached.
func hardStartSynq(t *testing.T, args string) *kerneltest.Proc {
	t.Helper()
	p := kerneltest.Start(t, kerneltest.Synq(args))
	if !p.Attached(t, 20*time.Second) {
		t.Fatalf("synq %s exited before attaching (%v); stderr %q", args, p.Err(), p.Stderr.String())
	}
	return p
}

// hardHeldPrograms lists the BPF programs a process holds an fd of (programs and
// links both report prog_id in fdinfo): exactly what that process loaded,
// whatever other tests load at the same time.
func hardHeldPrograms(t *testing.T, pid int) map[ebpf.ProgramID]bool {
	t.Helper()
	return hardHeldIDs[ebpf.ProgramID](t, pid, "prog_id:")
}

// hardHeldMaps lists the BPF maps a process holds (map fdinfo has map_id
// since Linux 6.x; older kernels report none).
func hardHeldMaps(t *testing.T, pid int) map[ebpf.MapID]bool {
	t.Helper()
	return hardHeldIDs[ebpf.MapID](t, pid, "map_id:")
}

// hardHeldIDs is the set of the ids under key in a process's fdinfo.
func hardHeldIDs[ID ~uint32](t *testing.T, pid int, key string) map[ID]bool {
	t.Helper()
	ids := map[ID]bool{}
	for _, id := range hardFdinfoIDs(t, pid, key) {
		ids[ID(id)] = true
	}
	return ids
}

func hardFdinfoIDs(t *testing.T, pid int, key string) []uint32 {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fdinfo", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint32
	for _, e := range ents {
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), key); ok {
				if id, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32); err == nil && id != 0 {
					ids = append(ids, uint32(id))
				}
			}
		}
		f.Close()
	}
	return ids
}

// hardKernelPrograms lists every BPF program loaded in the kernel by ID, with
// its name.
func hardKernelPrograms(t *testing.T) map[ebpf.ProgramID]string {
	t.Helper()
	out := map[ebpf.ProgramID]string{}
	var id ebpf.ProgramID
	for {
		next, err := ebpf.ProgramGetNextID(id)
		if errors.Is(err, os.ErrNotExist) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		id = next
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue // released meanwhile
		}
		name := "?"
		if info, err := p.Info(); err == nil {
			name = info.Name
		}
		p.Close()
		out[id] = name
	}
}

// hardWaitReleased polls until none of ids is loaded any more. Release is
// deferred to an RCU grace period (and, after SIGKILL, to the kernel
// closing the dead process's fds).
func hardWaitReleased(t *testing.T, ids map[ebpf.ProgramID]bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	start := time.Now()
	for {
		var left []string
		now := hardKernelPrograms(t)
		for id := range ids {
			if name, ok := now[id]; ok {
				left = append(left, fmt.Sprintf("%d (%s)", id, name))
			}
		}
		if len(left) == 0 {
			t.Logf("all %d programs released after %s", len(ids), time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			sort.Strings(left)
			t.Fatalf("programs still loaded 5s after synq exited: %s", strings.Join(left, ", "))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Every program and map synq holds (read from its fdinfo, so programs other
// tests load meanwhile do not count) is gone from the kernel after it exits:
// cleanly on SIGINT/SIGTERM/SIGHUP, and by the kernel closing its fds on
// SIGKILL (nothing is pinned).
func TestKernelSignalsReleasePrograms(t *testing.T) {
	kerneltest.Root(t)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			ns := kerneltest.Netns(t, nil)
			before := hardKernelPrograms(t)
			p := hardStartSynq(t, fmt.Sprintf("trace --duration 1m --netns /proc/%d/fd/%d", os.Getpid(), ns.FD()))
			held := hardHeldPrograms(t, p.Cmd.Process.Pid)
			maps := hardHeldMaps(t, p.Cmd.Process.Pid)
			if len(held) == 0 {
				t.Fatal("synq attached but holds no BPF program fd")
			}
			during := hardKernelPrograms(t)
			var names []string
			for id := range held {
				name, ok := during[id]
				if !ok {
					t.Errorf("program %d held by synq is not in the kernel's list", id)
				}
				if _, ok := before[id]; ok {
					t.Errorf("program %d (%s) was loaded before synq started", id, name)
				}
				names = append(names, name)
			}
			sort.Strings(names)
			t.Logf("synq holds %d programs (%s) and %d maps", len(held), strings.Join(names, " "), len(maps))

			if err := p.Cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			code := p.Wait(t, 10*time.Second)
			if sig == syscall.SIGKILL {
				if code != -1 {
					t.Errorf("exit code %d after SIGKILL, want killed", code)
				}
			} else if code != 0 {
				t.Errorf("exit code %d after %s, want 0; stderr %q", code, sig, p.Stderr.String())
			}
			hardWaitReleased(t, held)
			// Maps are freed from a workqueue after their last reference
			// (programs included) is gone.
			deadline := time.Now().Add(5 * time.Second)
			for id := range maps {
				for {
					m, err := ebpf.NewMapFromID(id)
					if errors.Is(err, os.ErrNotExist) {
						break
					}
					if err == nil {
						m.Close()
					}
					if time.Now().After(deadline) {
						t.Fatalf("map %d still exists 5s after synq exited (err %v)", id, err)
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
		})
	}
}

// Two synq processes trace the same netns at once: both attach and both see
// every connection.
func TestKernelTwoInstances(t *testing.T) {
	ns := kerneltest.Netns(t, nil)
	l := kerneltest.Listen(t, ns, "tcp4", "127.0.0.1:0", 128)
	srv := netlab.Serve(l, netlab.ServerConfig{})
	defer srv.Stop()

	args := fmt.Sprintf("trace --duration 1m --netns /proc/%d/fd/%d --port %d --output json", os.Getpid(), ns.FD(), l.Port())
	a := hardStartSynq(t, args)
	b := hardStartSynq(t, args)
	const n = 20
	res, err := ns.DialMany(context.Background(), l.Addr().String(), n, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	if !srv.WaitAccepts(n, 5*time.Second) {
		t.Fatalf("server accepted %d of %d", srv.Accepts(), n)
	}
	// Give both readers time to drain (default poll interval 100 ms).
	count := func(p *kerneltest.Proc, kind string) int {
		return strings.Count(p.Stdout.String(), `"kind":"`+kind+`"`)
	}
	deadline := time.Now().Add(3 * time.Second)
	for (count(a, "accept") < n || count(b, "accept") < n) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	for name, p := range map[string]*kerneltest.Proc{"first": a, "second": b} {
		p.Cmd.Process.Signal(syscall.SIGINT)
		if code := p.Wait(t, 10*time.Second); code != 0 {
			t.Errorf("%s synq: exit %d; stderr %q", name, code, p.Stderr.String())
		}
		t.Logf("%s synq: %d enqueue, %d accept events", name, count(p, "enqueue"), count(p, "accept"))
		if got := count(p, "accept"); got != n {
			t.Errorf("%s synq saw %d accept events, want %d; stderr %q", name, got, n, p.Stderr.String())
		}
	}
}
