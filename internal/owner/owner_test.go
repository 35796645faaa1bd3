package owner_test

import (
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/synq-trace/synq/internal/owner"
)

// listen opens n listening sockets in this process and returns their inodes.
func listen(tb testing.TB, n int) map[uint64]bool {
	tb.Helper()
	inodes := map[uint64]bool{}
	for range n {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			tb.Skipf("listener %d of %d: %v", len(inodes)+1, n, err)
		}
		tb.Cleanup(func() { l.Close() })
		f, err := l.(*net.TCPListener).File() // a dup: same socket, same inode
		if err != nil {
			tb.Fatal(err)
		}
		var st syscall.Stat_t
		err = syscall.Fstat(int(f.Fd()), &st)
		f.Close()
		if err != nil {
			tb.Fatal(err)
		}
		inodes[st.Ino] = true
	}
	return inodes
}

func TestIndexFindsThisProcess(t *testing.T) {
	want := listen(t, 3)
	comm, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	idx := owner.Index("/proc", want)
	if len(idx) != len(want) {
		t.Fatalf("Index found %d of %d sockets: %v", len(idx), len(want), idx)
	}
	for ino := range want {
		procs := idx[ino]
		if len(procs) != 1 || procs[0].PID != os.Getpid() || procs[0].Comm+"\n" != string(comm) {
			t.Errorf("socket %d: owners %+v, want this process (%d, %q)", ino, procs, os.Getpid(), comm)
		}
	}
	if all := owner.Index("/proc", nil); len(all[firstKey(want)]) != 1 {
		t.Errorf("Index(nil) misses socket %d", firstKey(want))
	}
	if got := owner.Index(t.TempDir(), want); len(got) != 0 {
		t.Errorf("Index of an empty proc dir = %v", got)
	}
}

func firstKey(m map[uint64]bool) uint64 {
	for k := range m {
		return k
	}
	return 0
}

// BenchmarkIndex walks /proc with 2000 listening sockets held by this
// process (synq listeners with 10k listeners spends most of its owner time
// here: one readlink per fd of every process).
func BenchmarkIndex(b *testing.B) {
	want := listen(b, 2000)
	b.ReportAllocs()
	for b.Loop() {
		if got := owner.Index("/proc", want); len(got) != len(want) {
			b.Fatalf("found %d of %d", len(got), len(want))
		}
	}
}
