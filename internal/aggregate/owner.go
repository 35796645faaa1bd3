package aggregate

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/synq-trace/synq/internal/identity"
	"github.com/synq-trace/synq/internal/owner"
)

// Owner is a process holding a listening socket, with the cgroup it runs in.
type Owner struct {
	PID  int    `json:"pid"`
	Comm string `json:"comm"`
	// Cgroup is the process's cgroup v2 path (or, on a host without one,
	// its name=systemd v1 path), as /proc/PID/cgroup shows it.
	Cgroup string `json:"cgroup,omitempty"`
	// Identity names the workload: unit, container, pod (empty fields
	// where unknown).
	identity.Identity
	// Accepting: accept events showed this process accepting from the
	// socket (the worker serving it, where every worker holds it).
	Accepting bool `json:"accepting,omitempty"`
}

// Owners maps socket inodes to every process holding them, with cgroups.
// procDir is /proc (tests point it elsewhere).
func Owners(procDir string, inodes map[uint64]bool) map[uint64][]Owner {
	return OwnersIndexed(procDir, owner.Index(procDir, inodes), inodes)
}

// OwnersIndexed is Owners from an index already read (owner.Index, maybe of
// every socket): the holders of the inodes, with cgroups.
func OwnersIndexed(procDir string, idx map[uint64][]owner.Proc, inodes map[uint64]bool) map[uint64][]Owner {
	out := make(map[uint64][]Owner, len(inodes))
	type workload struct {
		cgroup string
		id     identity.Identity
	}
	byPID := map[int]workload{} // one read and parse per process, however many sockets it holds
	for ino, procs := range idx {
		if !inodes[ino] {
			continue
		}
		for _, p := range procs {
			w, ok := byPID[p.PID]
			if !ok {
				cg := identity.ReadCgroup(procDir, p.PID)
				if cg == "" && gone(procDir, p.PID) {
					continue // exited since the fd walk
				}
				w = workload{cg, identity.FromCgroup(cg)}
				byPID[p.PID] = w
			}
			out[ino] = append(out[ino], Owner{PID: p.PID, Comm: p.Comm, Cgroup: w.cgroup, Identity: w.id})
		}
	}
	return out
}

func gone(procDir string, pid int) bool {
	_, err := os.Stat(filepath.Join(procDir, strconv.Itoa(pid)))
	return errors.Is(err, fs.ErrNotExist)
}

// OwnerCache re-reads owners only when a listener appears whose inode was
// not indexed yet, or after MaxAge: walking every /proc/PID/fd each refresh
// costs more than synq's tracing on a busy host.
type OwnerCache struct {
	ProcDir string
	MaxAge  time.Duration
	// Resolver names containers and pods (nil: cgroup identities only).
	Resolver *identity.Resolver

	at      time.Time
	indexed map[uint64]bool
	owners  map[uint64][]Owner
}

// Lookup returns the owners of the given inodes.
func (c *OwnerCache) Lookup(now time.Time, inodes map[uint64]bool) map[uint64][]Owner {
	stale := c.owners == nil || now.Sub(c.at) >= c.MaxAge
	for ino := range inodes {
		if !c.indexed[ino] {
			stale = true
			break
		}
	}
	if stale {
		dir := c.ProcDir
		if dir == "" {
			dir = "/proc"
		}
		c.owners = Owners(dir, inodes)
		c.indexed = make(map[uint64]bool, len(inodes))
		for ino := range inodes {
			c.indexed[ino] = true
		}
		c.at = now
	}
	Resolve(c.owners, c.Resolver)
	return c.owners
}

// Resolve fills the owners' identities from the container runtime (r nil:
// nothing to do). Owners already named are skipped; a container the runtime
// does not know yet costs at most one listing per r's MinRefresh.
func Resolve(owners map[uint64][]Owner, r *identity.Resolver) {
	if r == nil {
		return
	}
	for _, list := range owners {
		for i := range list {
			if id := &list[i].Identity; id.Pod == "" && id.Container == "" {
				r.Fill(id)
			}
		}
	}
}
