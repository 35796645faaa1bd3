// Package owner maps socket inodes to the processes holding them, by walking
// /proc/PID/fd. A socket shared by forked workers has several owners.
package owner

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Proc is a process holding a socket.
type Proc struct {
	PID  int
	Comm string
}

// Index maps socket inode -> holders. Processes that vanish or whose fds
// cannot be read are skipped: ownership is best effort.
func Index(procDir string, want map[uint64]bool) map[uint64][]Proc {
	out := map[uint64][]Proc{}
	ents, err := os.ReadDir(procDir)
	if err != nil {
		return out
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		fdDir := filepath.Join(procDir, e.Name(), "fd")
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue
		}
		var comm string
		for _, fd := range fds {
			target, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
			if err != nil || !strings.HasPrefix(target, "socket:[") {
				continue
			}
			ino, err := strconv.ParseUint(strings.TrimSuffix(target[len("socket:["):], "]"), 10, 64)
			if err != nil || (want != nil && !want[ino]) {
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
	}
	return out
}
