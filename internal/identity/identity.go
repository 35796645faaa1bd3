// Package identity names the workload that owns a listener: the systemd unit,
// the container (id and runtime) and, on a Kubernetes node, the pod (UID from
// the cgroup path; name, Kubernetes namespace and container name from the
// container runtime's CRI API).
package identity

// Identity is what synq knows about the workload of one process. Every field
// is empty where it is unknown: nothing is guessed.
type Identity struct {
	// Unit is the systemd unit ("nginx.service"), for services.
	Unit string `json:"unit,omitempty"`
	// ContainerID is the container's id (64 hex for docker, containerd,
	// CRI-O and podman; the name for LXC).
	ContainerID string `json:"container_id,omitempty"`
	// Runtime is the container runtime the cgroup names: docker,
	// containerd, cri-o, podman, lxc.
	Runtime string `json:"runtime,omitempty"`
	// PodUID is the Kubernetes pod's UID, from the cgroup path.
	PodUID string `json:"pod_uid,omitempty"`
	// Pod, Namespace (Kubernetes namespace) and Container (name) come from
	// the runtime's CRI API.
	Pod       string `json:"pod,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Container string `json:"container,omitempty"`
}

// Display is the most useful name available: "namespace/pod/container", else
// the container (name or short id), else the unit; "" when none is known
// (callers then show pid/comm).
func (id Identity) Display() string {
	switch {
	case id.Pod != "":
		s := id.Namespace + "/" + id.Pod
		if id.Container != "" {
			s += "/" + id.Container
		}
		return s
	case id.Container != "":
		return id.Container
	case id.ContainerID != "":
		rt := id.Runtime
		if rt == "" {
			rt = "container"
		}
		return rt + ":" + id.ContainerID[:min(12, len(id.ContainerID))]
	case id.PodUID != "":
		return "pod " + id.PodUID
	}
	return id.Unit
}
