package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/synq-trace/synq/internal/kerneltest"
	"github.com/synq-trace/synq/internal/netlab"
	"github.com/synq-trace/synq/internal/render"
	"golang.org/x/sys/unix"
)

// acceptWorker is the test binary as a pre-forked server's worker
// (SYNQ_TEST_WORKER=N): it holds every listening socket it inherited, as
// nginx workers do, and accepts from the N-th (fd 3+N) only, printing a line
// per connection.
func acceptWorker(n int) int {
	f := os.NewFile(uintptr(3+n), "listener")
	ln, err := net.FileListener(f)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	out := bufio.NewWriter(os.Stdout)
	for {
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		c.Close()
		out.WriteString("accepted\n")
		out.Flush()
	}
}

// worker is a running acceptWorker and how many connections it accepted.
type worker struct {
	cmd *exec.Cmd
	mu  sync.Mutex
	n   int
}

func (w *worker) accepts() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

// startWorker runs acceptWorker(n) holding every socket of files.
func startWorker(t *testing.T, n int, files []*os.File) *worker {
	t.Helper()
	w := &worker{cmd: exec.Command(os.Args[0])}
	w.cmd.Env = append(os.Environ(), "SYNQ_TEST_WORKER="+strconv.Itoa(n))
	w.cmd.ExtraFiles = files
	w.cmd.Stderr = os.Stderr
	out, err := w.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		w.cmd.Process.Signal(syscall.SIGCONT)
		w.cmd.Process.Kill()
		w.cmd.Wait()
	})
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			w.mu.Lock()
			w.n++
			w.mu.Unlock()
		}
	}()
	return w
}

func inodeOf(t *testing.T, fd int) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// The issue this keeps fixed: SO_REUSEPORT members looked identical (same
// addr:port, same owner "master +2", as every worker holds every socket).
// Two members on one port, each served by its own worker process (both
// workers and this test, the "master", hold both sockets). Both workers
// accept first; then worker 2 is stopped (SIGSTOP) and a burst overflows
// its member only. `synq top` must show two rows told apart by member
// number and inode, the drops on worker 2's member (all of the netns's
// ListenDrops), and each member's own worker first, marked as accepting.
func TestKernelReusePortStoppedWorker(t *testing.T) {
	name := fmt.Sprintf("synq-rpw-%d", os.Getpid())
	ns := kerneltest.NamedNetns(t, name)
	// Member 1 has room for every burst; member 2 holds 5 (backlog 4).
	l1 := kerneltest.Listen(t, ns, "tcp4", "127.0.0.1:0", 128, netlab.ReusePort())
	l2 := kerneltest.Listen(t, ns, "tcp4", l1.String(), 4, netlab.ReusePort())
	var files []*os.File
	for _, l := range []*netlab.Listener{l1, l2} {
		fd, err := unix.Dup(l.FD())
		if err != nil {
			t.Fatal(err)
		}
		f := os.NewFile(uintptr(fd), "listener")
		defer f.Close()
		files = append(files, f)
	}
	ino1, ino2 := inodeOf(t, l1.FD()), inodeOf(t, l2.FD())
	w1, w2 := startWorker(t, 0, files), startWorker(t, 1, files)

	top := startSynq(append([]string{"top", "--once", "--interval", "4s", "--netns", name, "--output", "json"}, kerneltest.TierArgs()...)...)
	top.attached(t)
	// From here on every drop is in top's interval (bursts may overflow
	// member 2 before its worker stops too).
	c0, err := ns.Counters()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// Both workers accept: the kernel spreads connections over the
	// members by a hash of the 4-tuple.
	for round := 0; w1.accepts() == 0 || w2.accepts() == 0; round++ {
		if round == 5 {
			t.Fatalf("workers accepted %d and %d after 5 rounds of 16 connections", w1.accepts(), w2.accepts())
		}
		res, err := ns.DialMany(ctx, l1.String(), 16, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(2 * time.Second)
		for w1.accepts()+w2.accepts() < 16*(round+1) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		res.Close()
	}
	if err := w2.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	res, err := ns.DialMany(ctx, l1.String(), 40, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	// Closed (RST) before any SYN or SYN-ACK is resent (1 s): no drop
	// after the counters are read.
	res.Close()
	c1, err := ns.Counters()
	if err != nil {
		t.Fatal(err)
	}
	top.wait(t, 15*time.Second)
	drops := c1.Sub(c0)["TcpExt.ListenDrops"]
	t.Logf("worker 1 pid %d accepted %d, worker 2 pid %d accepted %d then stopped; ListenDrops +%d; dials %d established, %d pending\n%s",
		w1.cmd.Process.Pid, w1.accepts(), w2.cmd.Process.Pid, w2.accepts(), drops, res.Established, res.Pending, top.stdout)
	if drops == 0 {
		t.Fatal("the stopped worker's member dropped nothing")
	}

	validateLines(t, "top", top.stdout.String()) // member, owners[].accepting
	var f struct{ Rows []render.TopRowJSON }
	if err := json.Unmarshal([]byte(top.stdout.String()), &f); err != nil {
		t.Fatal(err)
	}
	rows := map[uint64]render.TopRowJSON{}
	for _, r := range f.Rows {
		if r.Port == l1.Port() {
			rows[r.Inode] = r
		}
	}
	m1, m2 := rows[ino1], rows[ino2]
	if len(rows) != 2 || m1.Member == 0 || m2.Member == 0 || m1.Member == m2.Member {
		t.Fatalf("rows of port %d by inode %v: want inodes %d and %d with members 1 and 2", l1.Port(), rows, ino1, ino2)
	}
	if m1.ListenDrops != 0 || m2.ListenDrops == 0 || (m2.ListenDropsExact && m2.ListenDrops != drops) {
		t.Errorf("drops: member %d (running worker) %d, member %d (stopped worker) %d (exact %v); netns ListenDrops +%d",
			m1.Member, m1.ListenDrops, m2.Member, m2.ListenDrops, m2.ListenDropsExact, drops)
	}
	for _, c := range []struct {
		row render.TopRowJSON
		w   *worker
	}{{m1, w1}, {m2, w2}} {
		o := c.row.Owners
		if len(o) != 3 || o[0].PID != c.w.cmd.Process.Pid || !o[0].Accepting || o[1].Accepting || o[2].Accepting {
			t.Errorf("member %d (inode %d): owners %+v; want its worker %d first and alone accepting, then the 2 other holders",
				c.row.Member, c.row.Inode, o, c.w.cmd.Process.Pid)
		}
	}

	// The same numbers in `synq listeners`: text "addr:port#k" by inode.
	code, out, stderr := runCLI("listeners", "--netns", name, "--port", strconv.Itoa(int(l1.Port())))
	if code != 0 {
		t.Fatalf("listeners exit %d: %s", code, stderr)
	}
	for _, r := range []render.TopRowJSON{m1, m2} {
		if want := fmt.Sprintf("%s#%d", l1.String(), r.Member); !strings.Contains(out, want+" ") {
			t.Errorf("listeners text has no %q:\n%s", want, out)
		}
	}
	for _, j := range listenersJSON(t, "listeners", "--output", "json", "--netns", name, "--port", strconv.Itoa(int(l1.Port()))) {
		ino := uint64(j["inode"].(float64))
		if m, _ := j["member"].(float64); int(m) != rows[ino].Member {
			t.Errorf("listeners JSON: inode %d member %v, top says %d", ino, j["member"], rows[ino].Member)
		}
	}
}
