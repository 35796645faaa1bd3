package identity

import "strings"

// Filter selects workloads (--pod, --k8s-namespace, --container, --unit):
// every field set must match; an empty Filter matches everything.
type Filter struct {
	Pod       string // pod name, exact
	Namespace string // Kubernetes namespace, exact
	Container string // container name, exact, or a prefix of its id
	Unit      string // systemd unit, exact; "nginx" matches "nginx.service"
}

// Empty says no field is set.
func (f Filter) Empty() bool { return f == Filter{} }

// Match says id is selected.
func (f Filter) Match(id Identity) bool {
	if f.Pod != "" && id.Pod != f.Pod {
		return false
	}
	if f.Namespace != "" && id.Namespace != f.Namespace {
		return false
	}
	if f.Container != "" && id.Container != f.Container &&
		(id.ContainerID == "" || !strings.HasPrefix(id.ContainerID, f.Container)) {
		return false
	}
	if f.Unit != "" && id.Unit != f.Unit && id.Unit != f.Unit+".service" {
		return false
	}
	return true
}

// String is the filter as its flags ("--pod web-0 --k8s-namespace shop").
func (f Filter) String() string {
	var parts []string
	for _, p := range []struct{ flag, v string }{
		{"--pod", f.Pod}, {"--k8s-namespace", f.Namespace}, {"--container", f.Container}, {"--unit", f.Unit},
	} {
		if p.v != "" {
			parts = append(parts, p.flag+" "+p.v)
		}
	}
	return strings.Join(parts, " ")
}
