// Package owner maps socket inodes to the processes holding them, by walking
// /proc/PID/fd. A socket shared by forked workers has several owners.
package owner

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Proc is a process holding a socket.
type Proc struct {
	PID  int
	Comm string
}

// Index maps socket inode -> holders. Processes that vanish or whose fds
// cannot be read are skipped: ownership is best effort.
//
// It costs one readlink(2) per open fd of every process (10k listeners: 10k+
// links), so it reads each link relative to the fd directory into one reused
// buffer rather than through a path and a string per fd.
func Index(procDir string, want map[uint64]bool) map[uint64][]Proc {
	out := map[uint64][]Proc{}
	ents, err := os.ReadDir(procDir)
	if err != nil {
		return out
	}
	// The links are read by one walker per CPU (up to 4), each taking the
	// next process: the walk is syscalls, and a host's sockets sit in a few
	// processes with many fds. Each walker fills its own map; the holders
	// of a socket end up sorted by pid.
	workers := min(runtime.GOMAXPROCS(0), 4, max(len(ents), 1))
	parts := make([]map[uint64][]Proc, workers)
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range parts {
		parts[w] = map[uint64][]Proc{}
		wg.Add(1)
		go func(part map[uint64][]Proc) {
			defer wg.Done()
			var link [64]byte // "socket:[18446744073709551615]" is 29 bytes
			for {
				i := int(next.Add(1) - 1)
				if i >= len(ents) {
					return
				}
				indexProc(procDir, ents[i].Name(), want, part, link[:])
			}
		}(parts[w])
	}
	wg.Wait()
	for _, part := range parts {
		for ino, procs := range part {
			out[ino] = append(out[ino], procs...)
		}
	}
	if workers > 1 {
		for _, procs := range out {
			if len(procs) > 1 {
				slices.SortFunc(procs, func(a, b Proc) int { return a.PID - b.PID })
			}
		}
	}
	return out
}

// indexProc adds the sockets of one /proc entry to out.
func indexProc(procDir, name string, want map[uint64]bool, out map[uint64][]Proc, link []byte) {
	pid, err := strconv.Atoi(name)
	if err != nil {
		return
	}
	d, err := os.Open(filepath.Join(procDir, name, "fd"))
	if err != nil {
		return
	}
	defer d.Close()
	fds, err := d.Readdirnames(-1)
	if err != nil {
		return
	}
	dfd := int(d.Fd())
	var comm string
	for _, fd := range fds {
		n, err := unix.Readlinkat(dfd, fd, link)
		if err != nil {
			continue
		}
		ino, ok := socketInode(link[:n])
		if !ok || (want != nil && !want[ino]) {
			continue
		}
		if comm == "" {
			b, _ := os.ReadFile(filepath.Join(procDir, name, "comm"))
			comm = strings.TrimSpace(string(b))
		}
		procs := out[ino]
		if len(procs) == 0 || procs[len(procs)-1].PID != pid {
			out[ino] = append(procs, Proc{PID: pid, Comm: comm})
		}
	}
}

// socketInode parses "socket:[INODE]".
func socketInode(b []byte) (uint64, bool) {
	b, ok := bytes.CutPrefix(b, []byte("socket:["))
	if !ok {
		return 0, false
	}
	b, ok = bytes.CutSuffix(b, []byte("]"))
	if !ok || len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var ino uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if ino > (^uint64(0)-d)/10 {
			return 0, false
		}
		ino = ino*10 + d
	}
	return ino, true
}
