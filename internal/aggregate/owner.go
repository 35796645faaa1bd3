package aggregate

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
	idx := owner.Index(procDir, inodes)
	out := make(map[uint64][]Owner, len(idx))
	cgroups := map[int]string{}
	for ino, procs := range idx {
		for _, p := range procs {
			cg, ok := cgroups[p.PID]
			if !ok {
				cg = ReadCgroup(procDir, p.PID)
				cgroups[p.PID] = cg
			}
			out[ino] = append(out[ino], Owner{PID: p.PID, Comm: p.Comm, Cgroup: cg, Identity: identity.Identity{ContainerID: ContainerID(cg)}})
		}
	}
	return out
}

// ReadCgroup is the cgroup of a process ("" when it cannot be read).
func ReadCgroup(procDir string, pid int) string {
	b, err := os.ReadFile(filepath.Join(procDir, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return ""
	}
	return ParseCgroup(b)
}

// ParseCgroup picks one path from a /proc/PID/cgroup file
// ("hierarchy-ID:controllers:path" lines): the cgroup v2 one ("0::path")
// unless it is the root; then the name=systemd v1 hierarchy's (where
// systemd, and docker's systemd driver, put services and containers); then
// any v1 path that names a container; else the v2 or systemd root.
func ParseCgroup(b []byte) string {
	var v2, systemd, container string
	for line := range bytes.Lines(b) {
		parts := strings.SplitN(strings.TrimSpace(string(line)), ":", 3)
		if len(parts) != 3 {
			continue
		}
		ctrl, path := parts[1], parts[2]
		switch {
		case parts[0] == "0" && ctrl == "":
			v2 = path
		case ctrl == "name=systemd":
			systemd = path
		case container == "" && ContainerID(path) != "":
			container = path
		}
	}
	for _, p := range []string{v2, systemd, container} {
		if p != "" && p != "/" {
			return p
		}
	}
	if v2 != "" {
		return v2
	}
	return systemd
}

// runtimePrefixes are how container runtimes name a container's cgroup
// (systemd driver: "<prefix><id>.scope"; cgroupfs driver: the bare id).
var runtimePrefixes = []string{"docker-", "cri-containerd-", "crio-", "libpod-", "containerd-", ""}

// ContainerID extracts a container id from a cgroup path, "" when the path
// does not look like a container's. The innermost match wins (a container
// nested in a Kubernetes pod slice is named by its own scope).
func ContainerID(path string) string {
	parts := strings.Split(path, "/")
	for i := len(parts) - 1; i >= 0; i-- {
		c := parts[i]
		if name, ok := strings.CutPrefix(c, "lxc.payload."); ok && name != "" {
			return name
		}
		if strings.HasPrefix(c, "crio-conmon-") || strings.HasPrefix(c, "libpod-conmon-") {
			continue // the runtime's monitor process, not the container
		}
		c = strings.TrimSuffix(c, ".scope")
		for _, p := range runtimePrefixes {
			if id, ok := strings.CutPrefix(c, p); ok && isHexID(id) {
				return id
			}
		}
	}
	return ""
}

func isHexID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// OwnerCache re-reads owners only when a listener appears whose inode was
// not indexed yet, or after MaxAge: walking every /proc/PID/fd each refresh
// costs more than synq's tracing on a busy host.
type OwnerCache struct {
	ProcDir string
	MaxAge  time.Duration

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
	return c.owners
}
