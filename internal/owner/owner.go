// Package owner maps socket inodes to the processes holding them, by walking
// /proc/PID/fd. A socket shared by forked workers has several owners.
package owner

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"

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
	var link [64]byte // "socket:[18446744073709551615]" is 29 bytes
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		d, err := os.Open(filepath.Join(procDir, e.Name(), "fd"))
		if err != nil {
			continue
		}
		fds, err := d.Readdirnames(-1)
		if err != nil {
			d.Close()
			continue
		}
		dfd := int(d.Fd())
		var comm string
		for _, fd := range fds {
			n, err := unix.Readlinkat(dfd, fd, link[:])
			if err != nil {
				continue
			}
			ino, ok := socketInode(link[:n])
			if !ok || (want != nil && !want[ino]) {
				continue
			}
			if comm == "" {
				b, _ := os.ReadFile(filepath.Join(procDir, e.Name(), "comm"))
				comm = strings.TrimSpace(string(b))
			}
			procs := out[ino]
			if len(procs) == 0 || procs[len(procs)-1].PID != pid {
				out[ino] = append(procs, Proc{PID: pid, Comm: comm})
			}
		}
		d.Close()
	}
	return out
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
