package identity

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// FromCgroup names the workload of a cgroup path, as far as the path says:
// the container (id and runtime) and the Kubernetes pod UID, else the systemd
// unit. Pod, Namespace and Container need the runtime (Resolver).
//
// Both cgroup drivers are understood: systemd's
// ("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice/cri-containerd-<id>.scope",
// "/system.slice/docker-<id>.scope") and cgroupfs's
// ("/kubepods/burstable/pod<uid>/<id>", "/docker/<id>").
func FromCgroup(path string) Identity {
	var id Identity
	parts := strings.Split(strings.Trim(path, "/"), "/")
	id.ContainerID, id.Runtime = container(parts)
	id.PodUID = podUID(parts)
	if id.ContainerID == "" && id.PodUID == "" {
		id.Unit = unit(parts)
	}
	return id
}

// scopePrefixes are how container runtimes name a container's cgroup with
// the systemd driver ("<prefix><id>.scope"); the cgroupfs driver of CRI-O and
// podman keeps the prefix without ".scope".
var scopePrefixes = []struct{ prefix, runtime string }{
	{"docker-", "docker"},
	{"cri-containerd-", "containerd"},
	{"crio-", "cri-o"},
	{"libpod-", "podman"},
	{"containerd-", "containerd"},
}

// container finds the innermost path component naming a container (a
// process in a nested cgroup, e.g. CRI-O's ".../crio-<id>.scope/container",
// belongs to it).
func container(parts []string) (id, runtime string) {
	for i := len(parts) - 1; i >= 0; i-- {
		c := parts[i]
		if name, ok := strings.CutPrefix(c, "lxc.payload."); ok && name != "" {
			return name, "lxc"
		}
		if i > 0 && parts[i-1] == "lxc" && c != "" && !strings.HasPrefix(c, "lxc.") {
			return c, "lxc" // LXC before 4.0: /lxc/<name>
		}
		if monitor(c) {
			// The runtime's monitor (conmon), not the container: nothing
			// further out is the container either.
			return "", ""
		}
		c = strings.TrimSuffix(c, ".scope")
		for _, p := range scopePrefixes {
			if hex, ok := strings.CutPrefix(c, p.prefix); ok && isHexID(hex) {
				return hex, p.runtime
			}
		}
		if isHexID(c) {
			// cgroupfs driver: the bare id; its parent says whose.
			rt := ""
			if i > 0 {
				switch parts[i-1] {
				case "docker":
					rt = "docker"
				case "libpod_parent":
					rt = "podman"
				}
			}
			return c, rt
		}
	}
	return "", ""
}

// monitor says a component is a container runtime's monitor process cgroup
// (CRI-O and podman run conmon in "crio-conmon-<id>.scope",
// "libpod-conmon-<id>.scope", or ".../conmon" with cgroupfs).
func monitor(c string) bool {
	return strings.HasPrefix(c, "crio-conmon-") || strings.HasPrefix(c, "libpod-conmon-") || c == "conmon"
}

// podUID reads the pod UID from a kubepods path: the systemd driver's
// "kubepods[-qos]-pod<uid with _ for ->.slice", the cgroupfs driver's
// "pod<uid>" under "kubepods".
func podUID(parts []string) string {
	under := false
	for _, c := range parts {
		if s, ok := strings.CutSuffix(c, ".slice"); ok && strings.HasPrefix(s, "kubepods") {
			if _, uid, ok := strings.Cut(s, "-pod"); ok && isUID(strings.ReplaceAll(uid, "_", "-")) {
				return strings.ReplaceAll(uid, "_", "-")
			}
			under = true
			continue
		}
		if c == "kubepods" {
			under = true
			continue
		}
		if uid, ok := strings.CutPrefix(c, "pod"); ok && under && isUID(uid) {
			return uid
		}
	}
	return ""
}

// unit is the innermost systemd service or scope (user services sit below
// "user@UID.service", which only names the user's manager). Slices are
// groups of units, not units.
func unit(parts []string) string {
	for i := len(parts) - 1; i >= 0; i-- {
		c := parts[i]
		if strings.HasSuffix(c, ".service") || strings.HasSuffix(c, ".scope") && !monitor(c) {
			return c
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

// isUID accepts the 8-4-4-4-12 hex form of a Kubernetes UID.
func isUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
	}
	return true
}

// ReadCgroup is the cgroup of a process ("" when it cannot be read, e.g.
// the process exited).
func ReadCgroup(procDir string, pid int) string {
	b, err := os.ReadFile(filepath.Join(procDir, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return ""
	}
	return ParseProcCgroup(b)
}

// ParseProcCgroup picks one path from a /proc/PID/cgroup file
// ("hierarchy-ID:controllers:path" lines). A path that names a container
// or pod wins, from any hierarchy: on a hybrid host the cgroupfs driver
// puts containers in the v1 hierarchies only (the v2 path stays dockerd's
// service). Else the cgroup v2 path ("0::path") unless it is the root, then
// the name=systemd v1 hierarchy's (where systemd puts services on a v1 or
// hybrid host); else the root.
func ParseProcCgroup(b []byte) string {
	var v2, systemd string
	var others []string
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
		default:
			others = append(others, path)
		}
	}
	for _, p := range append([]string{v2, systemd}, others...) {
		if id := FromCgroup(p); id.ContainerID != "" || id.PodUID != "" {
			return p
		}
	}
	for _, p := range []string{v2, systemd} {
		if p != "" && p != "/" {
			return p
		}
	}
	if v2 != "" {
		return v2
	}
	return systemd
}
