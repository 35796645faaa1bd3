package identity

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// DefaultEndpoints are the CRI sockets tried, in order, when none is given:
// containerd, CRI-O, cri-dockerd (docker on Kubernetes), k3s's containerd.
var DefaultEndpoints = []string{
	"/run/containerd/containerd.sock",
	"/run/crio/crio.sock",
	"/var/run/cri-dockerd.sock",
	"/run/k3s/containerd/containerd.sock",
}

// Kubernetes labels the kubelet puts on every container it creates through
// the CRI (k8s.io/kubelet/pkg/types/labels.go).
const (
	labelPodName      = "io.kubernetes.pod.name"
	labelPodNamespace = "io.kubernetes.pod.namespace"
	labelPodUID       = "io.kubernetes.pod.uid"
	labelContainer    = "io.kubernetes.container.name"
)

// ResolverConfig says where the container runtime answers.
type ResolverConfig struct {
	// Endpoint is the CRI socket: a path or a unix:// URL (as crictl's
	// --runtime-endpoint). Empty: the first of DefaultEndpoints that exists.
	Endpoint string
	// Timeout bounds each call to the runtime (default 2s): a hung socket
	// costs a command at most that, once per MinRefresh.
	Timeout time.Duration
	// MinRefresh is the least time between two listings of the runtime's
	// containers (default 5s).
	MinRefresh time.Duration
	// Warn receives the one line said when names cannot be had (nil:
	// silent; Status still tells).
	Warn io.Writer
}

// Resolver names containers from the container runtime's CRI API: pod,
// Kubernetes namespace and container name. It lists the runtime's
// containers once, and again only when a container id it does not know
// appears (at most once per MinRefresh). It never fails: without the
// runtime, identities stay what the cgroup path says. Safe for concurrent
// use.
type Resolver struct {
	cfg ResolverConfig

	mu        sync.Mutex
	conn      *grpc.ClientConn
	client    cri.RuntimeServiceClient
	endpoint  string // the socket path in use or tried
	runtime   string // the runtime's name (Version), e.g. "containerd"
	version   string
	byID      map[string]Identity // containers and pod sandboxes by id
	pods      map[string]Identity // pods by UID
	listed    time.Time           // last listing attempt
	listedOK  bool                // the last listing answered
	err       error               // why names are unavailable, nil when they are
	warned    bool
	unknownOK bool // the "does not know" line was said
}

// NewResolver connects lazily: nothing is dialled until a container id is
// looked up.
func NewResolver(cfg ResolverConfig) *Resolver {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.MinRefresh <= 0 {
		cfg.MinRefresh = 5 * time.Second
	}
	return &Resolver{cfg: cfg}
}

// endpointPath turns a --runtime-endpoint value into a socket path.
func endpointPath(e string) (string, error) {
	if p, ok := strings.CutPrefix(e, "unix://"); ok {
		e = p
	} else if strings.Contains(e, "://") {
		return "", fmt.Errorf("runtime endpoint %q: only unix sockets (a path or unix:///path)", e)
	}
	if e == "" {
		return "", errors.New("empty runtime endpoint")
	}
	return e, nil
}

// CheckEndpoint validates a --runtime-endpoint value (usage errors).
func CheckEndpoint(e string) error {
	_, err := endpointPath(e)
	return err
}

// Fill completes id from the runtime when id names a Kubernetes pod (its
// cgroup path has the pod UID: every kubelet cgroup layout does): Pod,
// Namespace, Container, and Runtime where the cgroup path did not say it. A
// container the runtime does not list, but whose pod it knows (a pod
// sandbox's own cgroup), gets the pod's names. Containers outside any pod
// (plain docker, podman, nerdctl) are not the CRI's: they are not asked
// about, so a docker host, whose containerd ships with its CRI plugin
// disabled, hears nothing about a runtime it does not use. It may list the
// runtime's containers (bounded by Timeout, at most once per MinRefresh);
// it never fails. A nil Resolver does nothing.
func (r *Resolver) Fill(id *Identity) {
	if r == nil || id.PodUID == "" || noCRI(id.Runtime) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.other(*id) {
		return
	}
	got, ok := r.lookup(*id)
	_, listed := r.byID[id.ContainerID]
	if (!ok || id.ContainerID != "" && !listed) && time.Since(r.listed) >= r.cfg.MinRefresh {
		r.list()
		got, ok = r.lookup(*id)
	}
	if !ok {
		if r.listedOK && !r.unknownOK && !r.other(*id) {
			r.unknownOK = true
			what := "pod " + id.PodUID
			if id.ContainerID != "" {
				what = "container " + id.ContainerID[:min(12, len(id.ContainerID))]
			}
			r.say(fmt.Sprintf("the container runtime (%s at %s) does not know %s: its identity comes from its cgroup path alone",
				r.runtime, r.endpoint, what))
		}
		return
	}
	id.Pod, id.Namespace, id.Container = got.Pod, got.Namespace, got.Container
	if id.PodUID == "" {
		id.PodUID = got.PodUID
	}
	if id.Runtime == "" {
		id.Runtime = got.Runtime
	}
}

// noCRI says a runtime never answers the CRI: podman's and LXC's
// containers are named by their cgroup alone, without asking (or saying
// that the CRI runtime did not know them).
func noCRI(runtime string) bool { return runtime == "podman" || runtime == "lxc" }

// other says id's cgroup names another runtime than the one answering (a
// docker or podman container beside the kubelet's containerd): it cannot
// know the container, so it is neither asked nor said to miss it.
func (r *Resolver) other(id Identity) bool {
	return id.Runtime != "" && r.runtime != "" && id.Runtime != r.runtime
}

// lookup finds a container by id, else a pod by sandbox id or UID.
func (r *Resolver) lookup(id Identity) (Identity, bool) {
	if id.ContainerID != "" {
		if got, ok := r.byID[id.ContainerID]; ok {
			return got, true
		}
	}
	if id.PodUID != "" {
		if got, ok := r.pods[id.PodUID]; ok {
			return got, true
		}
	}
	return Identity{}, false
}

// list reads every container of the runtime into byID (r.mu held).
func (r *Resolver) list() {
	r.listed = time.Now()
	r.listedOK = false
	if err := r.connect(); err != nil {
		r.fail(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.Timeout)
	defer cancel()
	if r.runtime == "" {
		v, err := r.client.Version(ctx, &cri.VersionRequest{})
		if err != nil {
			r.fail(fmt.Errorf("CRI runtime at %s: %w", r.endpoint, err))
			return
		}
		r.runtime, r.version = criRuntimeName(v.RuntimeName), v.RuntimeVersion
	}
	resp, err := r.client.ListContainers(ctx, &cri.ListContainersRequest{})
	if err != nil {
		r.fail(fmt.Errorf("CRI runtime %s at %s: list containers: %w", r.runtime, r.endpoint, err))
		return
	}
	byID := make(map[string]Identity, len(resp.Containers))
	for _, c := range resp.Containers {
		l := c.Labels
		id := Identity{ContainerID: c.Id, Runtime: r.runtime, PodUID: l[labelPodUID], Pod: l[labelPodName],
			Namespace: l[labelPodNamespace], Container: l[labelContainer]}
		if id.Container == "" && c.Metadata != nil {
			id.Container = c.Metadata.Name
		}
		byID[c.Id] = id
	}
	sandboxes, err := r.client.ListPodSandbox(ctx, &cri.ListPodSandboxRequest{})
	if err != nil {
		r.fail(fmt.Errorf("CRI runtime %s at %s: list pod sandboxes: %w", r.runtime, r.endpoint, err))
		return
	}
	pods := make(map[string]Identity, len(sandboxes.Items))
	for _, s := range sandboxes.Items {
		m := s.Metadata
		if m == nil || m.Uid == "" {
			continue
		}
		p := Identity{Runtime: r.runtime, PodUID: m.Uid, Pod: m.Name, Namespace: m.Namespace}
		pods[m.Uid] = p
		if _, ok := byID[s.Id]; !ok {
			p.ContainerID = s.Id
			byID[s.Id] = p
		}
	}
	r.byID, r.pods, r.err, r.listedOK = byID, pods, nil, true
}

// criRuntimeName is the runtime's name as FromCgroup names runtimes.
func criRuntimeName(n string) string {
	switch n {
	case "cri-o":
		return "cri-o"
	case "docker":
		return "docker"
	}
	if strings.Contains(n, "containerd") {
		return "containerd"
	}
	return n
}

// connect finds the socket and makes the client (r.mu held). grpc dials
// lazily: an unreachable socket fails the first call, within its timeout.
func (r *Resolver) connect() error {
	if r.client != nil {
		return nil
	}
	path := ""
	if r.cfg.Endpoint != "" {
		p, err := endpointPath(r.cfg.Endpoint)
		if err != nil {
			return err
		}
		path = p
	} else {
		for _, p := range DefaultEndpoints {
			if _, err := os.Stat(p); err == nil {
				path = p
				break
			}
		}
		if path == "" {
			return fmt.Errorf("no container runtime socket (tried %s; --runtime-endpoint names another)", strings.Join(DefaultEndpoints, ", "))
		}
	}
	r.endpoint = path
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("container runtime socket: %w", err)
	}
	conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("container runtime socket %s: %w", path, err)
	}
	r.conn, r.client = conn, cri.NewRuntimeServiceClient(conn)
	return nil
}

// fail records why names are unavailable and says it once (r.mu held).
func (r *Resolver) fail(err error) {
	r.err = err
	if !r.warned {
		r.warned = true
		r.say(err.Error() + ": pod and container names unknown, identities from cgroup paths alone")
	}
}

func (r *Resolver) say(s string) {
	if r.cfg.Warn != nil {
		fmt.Fprintln(r.cfg.Warn, "synq: "+s)
	}
}

// Status is what the resolver could do at its last listing.
type Status struct {
	// Endpoint is the socket used or tried ("" before any lookup, or when
	// none was found).
	Endpoint string
	// Runtime and Version are the runtime's, once it answered.
	Runtime, Version string
	// Containers is how many containers the last listing returned.
	Containers int
	// Err says why names are unavailable (nil when the runtime answers,
	// or before any container was looked up).
	Err error
}

// String is one line for a health page or a log.
func (s Status) String() string {
	switch {
	case s.Err != nil:
		return "degraded: " + s.Err.Error()
	case s.Runtime == "":
		return "idle: no container looked up yet"
	}
	return fmt.Sprintf("ok: %s %s at %s, %d containers", s.Runtime, s.Version, s.Endpoint, s.Containers)
}

// Status reports the resolver's state (nil Resolver: idle).
func (r *Resolver) Status() Status {
	if r == nil {
		return Status{}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return Status{Endpoint: r.endpoint, Runtime: r.runtime, Version: r.version, Containers: len(r.byID), Err: r.err}
}

// Close releases the connection.
func (r *Resolver) Close() error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conn == nil {
		return nil
	}
	err := r.conn.Close()
	r.conn, r.client = nil, nil
	return err
}
