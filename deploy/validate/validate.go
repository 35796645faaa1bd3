// Package validate checks synq's Kubernetes manifests (deploy/kubernetes)
// without a cluster: every document decodes strictly into its typed API
// object (an unknown or misspelt field is an error, as the API server's
// strict field validation would make it), and the objects agree with each
// other and with synq's security posture.
//
// It is a module of its own so that k8s.io/api stays out of synq's go.mod.
package validate

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// Object is one decoded manifest document.
type Object struct {
	File string // base name of the file it came from
	Kind string // apiVersion/kind
	Obj  any    // *corev1.Namespace, *appsv1.DaemonSet, ...
}

// kinds are the API types synq's manifests may use, by apiVersion/kind.
var kinds = map[string]func() any{
	"v1/Namespace":                            func() any { return &corev1.Namespace{} },
	"v1/ServiceAccount":                       func() any { return &corev1.ServiceAccount{} },
	"v1/Service":                              func() any { return &corev1.Service{} },
	"apps/v1/DaemonSet":                       func() any { return &appsv1.DaemonSet{} },
	"monitoring.coreos.com/v1/PodMonitor":     func() any { return &monitoringv1.PodMonitor{} },
	"monitoring.coreos.com/v1/PrometheusRule": func() any { return &monitoringv1.PrometheusRule{} },
}

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

// Load decodes every *.yaml file in dir, each document into its typed
// object, rejecting unknown and duplicate fields.
func Load(dir string) ([]Object, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no *.yaml in %s", dir)
	}
	sort.Strings(files)
	var out []Object
	var errs []error
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		for i, doc := range docSep.Split(string(b), -1) {
			if isEmpty(doc) {
				continue
			}
			o, err := decode([]byte(doc))
			if err != nil {
				errs = append(errs, fmt.Errorf("%s, document %d: %w", filepath.Base(f), i+1, err))
				continue
			}
			o.File = filepath.Base(f)
			out = append(out, o)
		}
	}
	return out, errors.Join(errs...)
}

func isEmpty(doc string) bool {
	for _, line := range strings.Split(doc, "\n") {
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
			return false
		}
	}
	return true
}

func decode(doc []byte) (Object, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return Object{}, err
	}
	kind := tm.APIVersion + "/" + tm.Kind
	newObj, ok := kinds[kind]
	if !ok {
		return Object{}, fmt.Errorf("unexpected kind %q", kind)
	}
	obj := newObj()
	// What the API server's strict field validation does: duplicate keys
	// and unknown fields are errors, and field names are case-sensitive.
	// (yaml.UnmarshalStrict alone goes through encoding/json, which would
	// take "hostPid" for hostPID.)
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return Object{}, fmt.Errorf("%s: %w", kind, err)
	}
	strict, err := kjson.UnmarshalStrict(js, obj, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return Object{}, fmt.Errorf("%s: %w", kind, err)
	}
	if len(strict) > 0 {
		return Object{}, fmt.Errorf("%s: %w", kind, errors.Join(strict...))
	}
	return Object{Kind: kind, Obj: obj}, nil
}

// Policy is what Check holds the manifests to.
type Policy struct {
	Namespace string
	// Capabilities a container may add, and those it must add.
	AllowedCaps, RequiredCaps []corev1.Capability
	// ServeFlags are the flags of `synq serve` (without "--"); nil skips
	// the check of the DaemonSet's arguments.
	ServeFlags []string
}

// DefaultPolicy: namespace synq; BPF and PERFMON always, SYSLOG (kallsyms),
// SYS_ADMIN (setns) and SYS_RESOURCE (RLIMIT_MEMLOCK before Linux 5.11)
// allowed; nothing else. NET_ADMIN is not needed.
var DefaultPolicy = Policy{
	Namespace:    "synq",
	AllowedCaps:  []corev1.Capability{"BPF", "PERFMON", "SYSLOG", "SYS_ADMIN", "SYS_RESOURCE"},
	RequiredCaps: []corev1.Capability{"BPF", "PERFMON"},
}

// Check returns every way the objects break the policy or disagree with
// each other.
func Check(objs []Object, p Policy) []error {
	c := checker{p: p}
	var ds []*appsv1.DaemonSet
	sas := map[string]bool{}
	nsFound := false
	for _, o := range objs {
		meta := objectMeta(o.Obj)
		if _, isNS := o.Obj.(*corev1.Namespace); isNS {
			nsFound = nsFound || meta.Name == p.Namespace
		} else if meta.Namespace != p.Namespace {
			c.errorf("%s %s: namespace %q, want %q", o.Kind, meta.Name, meta.Namespace, p.Namespace)
		}
		if meta.Name == "" {
			c.errorf("%s in %s has no name", o.Kind, o.File)
		}
		switch v := o.Obj.(type) {
		case *appsv1.DaemonSet:
			ds = append(ds, v)
		case *corev1.ServiceAccount:
			sas[v.Name] = true
			if v.AutomountServiceAccountToken == nil || *v.AutomountServiceAccountToken {
				c.errorf("ServiceAccount %s mounts a token: synq never talks to the API server", v.Name)
			}
		}
	}
	if !nsFound {
		c.errorf("no Namespace %s", p.Namespace)
	}
	if len(ds) != 1 {
		c.errorf("%d DaemonSets, want 1", len(ds))
		return c.errs
	}
	d := ds[0]
	c.daemonSet(d, sas)
	for _, o := range objs {
		switch v := o.Obj.(type) {
		case *corev1.Service:
			c.service(v, d)
		case *monitoringv1.PodMonitor:
			c.podMonitor(v, d)
		}
	}
	return c.errs
}

type checker struct {
	p    Policy
	errs []error
}

func (c *checker) errorf(format string, a ...any) { c.errs = append(c.errs, fmt.Errorf(format, a...)) }

func objectMeta(o any) metav1.ObjectMeta {
	switch v := o.(type) {
	case *corev1.Namespace:
		return v.ObjectMeta
	case *corev1.ServiceAccount:
		return v.ObjectMeta
	case *corev1.Service:
		return v.ObjectMeta
	case *appsv1.DaemonSet:
		return v.ObjectMeta
	case *monitoringv1.PodMonitor:
		return v.ObjectMeta
	case *monitoringv1.PrometheusRule:
		return v.ObjectMeta
	}
	return metav1.ObjectMeta{}
}

// criDirs are the directories of the container runtimes' CRI sockets that
// synq asks for pod and container names. The directory is mounted, not the
// socket: hostPath type Socket stops the pod on a node without the runtime,
// and a missing file path makes the runtime create a directory in its place.
var criDirs = map[string]bool{"/run/containerd": true, "/run/crio": true}

func (c *checker) daemonSet(d *appsv1.DaemonSet, sas map[string]bool) {
	name := "DaemonSet " + d.Name
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	switch {
	case err != nil:
		c.errorf("%s: selector: %v", name, err)
	case sel.Empty():
		c.errorf("%s: empty selector", name)
	case !sel.Matches(labels.Set(d.Spec.Template.Labels)):
		c.errorf("%s: selector %s does not match the pod template's labels %v", name, sel, d.Spec.Template.Labels)
	}
	ps := d.Spec.Template.Spec
	if !sas[ps.ServiceAccountName] {
		c.errorf("%s: service account %q is not among the manifests", name, ps.ServiceAccountName)
	}
	if ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
		c.errorf("%s: mounts a service account token", name)
	}
	if !ps.HostPID {
		c.errorf("%s: no hostPID: synq finds container namespaces through /proc", name)
	}
	if ps.HostNetwork && ps.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
		c.errorf("%s: hostNetwork with dnsPolicy %q, want ClusterFirstWithHostNet", name, ps.DNSPolicy)
	}
	if ps.HostIPC {
		c.errorf("%s: hostIPC is not needed", name)
	}
	if len(ps.Containers) != 1 {
		c.errorf("%s: %d containers, want 1", name, len(ps.Containers))
		return
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range ps.Volumes {
		volumes[v.Name] = v
	}
	ct := ps.Containers[0]
	cname := name + " container " + ct.Name
	c.securityContext(cname, ct.SecurityContext)
	ports := map[string]int32{}
	for _, p := range ct.Ports {
		ports[p.Name] = p.ContainerPort
	}
	for what, pr := range map[string]*corev1.Probe{"readiness": ct.ReadinessProbe, "liveness": ct.LivenessProbe} {
		switch {
		case pr == nil || pr.HTTPGet == nil:
			c.errorf("%s: no HTTP %s probe", cname, what)
		case pr.HTTPGet.Path != "/healthz":
			c.errorf("%s: %s probe on %q, want /healthz", cname, what, pr.HTTPGet.Path)
		case pr.HTTPGet.Port.StrVal != "" && ports[pr.HTTPGet.Port.StrVal] == 0:
			c.errorf("%s: %s probe on port %q, which the container does not declare", cname, what, pr.HTTPGet.Port.StrVal)
		}
	}
	if ct.Resources.Limits.Memory().IsZero() {
		c.errorf("%s: no memory limit", cname)
	}
	mounted := map[string]bool{}
	for _, m := range ct.VolumeMounts {
		v, ok := volumes[m.Name]
		if !ok {
			c.errorf("%s: mount %s of an undeclared volume", cname, m.Name)
			continue
		}
		mounted[m.Name] = true
		if v.HostPath == nil {
			continue
		}
		if !m.ReadOnly {
			c.errorf("%s: host path %s mounted writable", cname, v.HostPath.Path)
		}
		if p := filepath.Clean(v.HostPath.Path); p == "/" || strings.HasSuffix(p, ".sock") || p == "/proc" || p == "/sys" {
			c.errorf("%s: host path %s is broader than synq needs", cname, p)
		}
		if criDirs[filepath.Clean(v.HostPath.Path)] && (v.HostPath.Type == nil || *v.HostPath.Type != corev1.HostPathDirectoryOrCreate) {
			c.errorf("%s: runtime socket directory %s must be DirectoryOrCreate: a node without that runtime would not start synq", cname, v.HostPath.Path)
		}
		if v.HostPath.Path == "/run/netns" && (m.MountPropagation == nil || *m.MountPropagation != corev1.MountPropagationHostToContainer) {
			c.errorf("%s: /run/netns without HostToContainer propagation: pods started later would be invisible", cname)
		}
	}
	for n := range volumes {
		if !mounted[n] {
			c.errorf("%s: volume %s is never mounted", name, n)
		}
	}
	c.args(cname, ct, ports)
}

func (c *checker) securityContext(name string, sc *corev1.SecurityContext) {
	if sc == nil {
		c.errorf("%s: no securityContext", name)
		return
	}
	if sc.Privileged != nil && *sc.Privileged {
		c.errorf("%s: privileged: synq needs a few capabilities, not all", name)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		c.errorf("%s: allowPrivilegeEscalation is not false", name)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		c.errorf("%s: root filesystem is writable", name)
	}
	if sc.SeccompProfile == nil || sc.SeccompProfile.Type == corev1.SeccompProfileTypeUnconfined {
		c.errorf("%s: no seccomp profile", name)
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		c.errorf("%s: capabilities not dropped (want drop: [ALL])", name)
		return
	}
	for _, cp := range sc.Capabilities.Add {
		if !slices.Contains(c.p.AllowedCaps, cp) {
			c.errorf("%s: capability %s is not one synq needs (%v)", name, cp, c.p.AllowedCaps)
		}
	}
	for _, cp := range c.p.RequiredCaps {
		if !slices.Contains(sc.Capabilities.Add, cp) {
			c.errorf("%s: capability %s missing", name, cp)
		}
	}
}

// args checks `synq serve` and its flags, and that the address it listens
// on is a port the container declares.
func (c *checker) args(name string, ct corev1.Container, ports map[string]int32) {
	args := append(slices.Clone(ct.Command), ct.Args...)
	if len(args) == 0 || args[0] != "serve" {
		c.errorf("%s: args %v do not start with serve", name, args)
		return
	}
	var listen string
	for i := 1; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "--") {
			c.errorf("%s: argument %q: synq serve takes flags only", name, a)
			continue
		}
		flag, val, hasVal := strings.Cut(a[2:], "=")
		if !hasVal && i+1 < len(args) && !strings.HasPrefix(args[i+1], "--") {
			val = args[i+1]
			i++
		}
		if c.p.ServeFlags != nil && !slices.Contains(c.p.ServeFlags, flag) {
			c.errorf("%s: synq serve has no flag --%s (it has %v)", name, flag, c.p.ServeFlags)
		}
		if flag == "listen" || flag == "web.listen-address" {
			listen = val
		}
	}
	if listen == "" {
		c.errorf("%s: no --web.listen-address: synq would serve on loopback, out of Prometheus' reach", name)
		return
	}
	i := strings.LastIndex(listen, ":")
	found := false
	for _, p := range ports {
		found = found || fmt.Sprint(p) == listen[i+1:]
	}
	if i < 0 || !found {
		c.errorf("%s: --web.listen-address %s is on no declared container port", name, listen)
	}
	if host := listen[:max(i, 0)]; strings.HasPrefix(host, "$(") {
		env := strings.TrimSuffix(strings.TrimPrefix(host, "$("), ")")
		if !slices.ContainsFunc(ct.Env, func(e corev1.EnvVar) bool { return e.Name == env }) {
			c.errorf("%s: --web.listen-address uses $(%s), which the container does not define", name, env)
		}
	}
}

func (c *checker) service(s *corev1.Service, d *appsv1.DaemonSet) {
	name := "Service " + s.Name
	if len(s.Spec.Selector) == 0 || !labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
		c.errorf("%s: selector %v does not select the DaemonSet's pods", name, s.Spec.Selector)
	}
	for _, p := range s.Spec.Ports {
		if p.TargetPort.StrVal != "" && !hasPort(d, p.TargetPort.StrVal) {
			c.errorf("%s: targetPort %q is not a port of the DaemonSet's container", name, p.TargetPort.StrVal)
		}
	}
}

func (c *checker) podMonitor(pm *monitoringv1.PodMonitor, d *appsv1.DaemonSet) {
	name := "PodMonitor " + pm.Name
	sel, err := metav1.LabelSelectorAsSelector(&pm.Spec.Selector)
	if err != nil || sel.Empty() || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
		c.errorf("%s: selector does not select the DaemonSet's pods (%v)", name, err)
	}
	if len(pm.Spec.PodMetricsEndpoints) == 0 {
		c.errorf("%s: no podMetricsEndpoints", name)
	}
	for _, ep := range pm.Spec.PodMetricsEndpoints {
		if ep.Port == nil || !hasPort(d, *ep.Port) {
			c.errorf("%s: endpoint port %v is not a named port of the DaemonSet's container", name, ep.Port)
		}
		if ep.Path != "" && ep.Path != "/metrics" {
			c.errorf("%s: path %q, synq serves /metrics", name, ep.Path)
		}
	}
}

func hasPort(d *appsv1.DaemonSet, name string) bool {
	for _, ct := range d.Spec.Template.Spec.Containers {
		for _, p := range ct.Ports {
			if p.Name == name {
				return true
			}
		}
	}
	return false
}

// FlagsFromHelp reads the long flag names out of `synq serve --help`: the
// lines of its OPTIONS that start with one.
func FlagsFromHelp(help []byte) []string {
	var out []string
	for _, line := range bytes.Split(help, []byte("\n")) {
		// "   --web.listen-address value, --listen value  usage": every
		// name before the usage column, aliases included.
		if !helpFlag.Match(line) {
			continue
		}
		names, _, _ := bytes.Cut(bytes.TrimSpace(line), []byte("  "))
		names, _, _ = bytes.Cut(names, []byte("\t"))
		for _, m := range helpName.FindAllSubmatch(names, -1) {
			out = append(out, string(m[1]))
		}
	}
	return out
}

var (
	helpFlag = regexp.MustCompile(`^\s+--[a-z]`)
	helpName = regexp.MustCompile(`--([a-z][a-z0-9.-]*)`)
)
