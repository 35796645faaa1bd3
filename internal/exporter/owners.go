package exporter

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/synq-trace/synq/internal/aggregate"
	"github.com/synq-trace/synq/internal/identity"
	"github.com/synq-trace/synq/internal/ledger"
)

// owned is who owns a listener series: the process holding its socket that
// names the workload best, and the workload.
type owned struct {
	id   identity.Identity
	pid  int
	comm string
}

// rank orders owners by how well they name the workload: a pod with names,
// a pod by UID, a container, a unit, nothing.
func rank(o *aggregate.Owner) int {
	switch {
	case o.Pod != "":
		return 4
	case o.PodUID != "":
		return 3
	case o.ContainerID != "":
		return 2
	case o.Unit != "":
		return 1
	}
	return 0
}

// best picks the owner that names the workload best, the lowest pid among
// equals (the parent of pre-forked workers, systemd's socket before the
// service's: stable from one scrape to the next).
func best(owners []aggregate.Owner) *aggregate.Owner {
	var b *aggregate.Owner
	for i := range owners {
		o := &owners[i]
		if b == nil || rank(o) > rank(b) || rank(o) == rank(b) && o.PID < b.PID {
			b = o
		}
	}
	return b
}

// named: the identity labels say something.
func named(id identity.Identity) bool {
	return id.Namespace != "" || id.Pod != "" || id.Container != ""
}

// nameOwners looks up the owners of the listening sockets of the series
// with a slot (their identity labels) through the source's cache, and says
// in the cri source's health what degraded their names.
//
// A series' identity labels follow its socket's owner, with one exception:
// when the names go (the runtime stops answering) but the container, as far
// as the cgroup tells, is the same, the series keeps its names, so that an
// outage of the runtime does not move every series to a new label set. A
// label change never makes a counter go backwards nor counts anything twice:
// the series continues, with everything it counted, under its new labels,
// and the old label set goes stale. increase() over the new one misses what
// the scrape of the change added (it starts from that sample).
func (e *Exporter) nameOwners(now time.Time) {
	byInode := map[uint64]*series{}
	e.tally.Each(func(s *ledger.Sock) {
		if !s.Listed || s.Inode == 0 {
			return
		}
		if se := e.series[keyOf(s.Endpoint)]; se != nil && se.slotted {
			byInode[s.Inode] = se
		}
	})
	if len(byInode) == 0 {
		return
	}
	inodes := make(map[uint64]bool, len(byInode))
	for ino := range byInode {
		inodes[ino] = true
	}
	owners, report := e.src.Owners(now, inodes)
	if report.Asked {
		// The source says why on stderr, once; /healthz names it.
		e.health.read(SourceCRI, report.Err)
	}
	// A series may have several sockets (SO_REUSEPORT): the best owner of
	// all of them.
	chosen := map[*series]*aggregate.Owner{}
	for ino, se := range byInode {
		if o := best(owners[ino]); o != nil {
			if c := chosen[se]; c == nil || rank(o) > rank(c) || rank(o) == rank(c) && o.PID < c.PID {
				chosen[se] = o
			}
		}
	}
	for se, o := range chosen {
		id := o.Identity
		if old := se.owner; old != nil && !named(id) && named(old.id) && (id.ContainerID == "" || id.ContainerID == old.id.ContainerID) {
			id.Namespace, id.Pod, id.Container = old.id.Namespace, old.id.Pod, old.id.Container
		}
		se.owner = &owned{id: id, pid: o.PID, comm: o.Comm}
	}
}

// identityLabels are the listener labels that name the workload: Kubernetes
// namespace, pod and container, empty where unknown.
func (se *series) identityLabels() (namespace, pod, container string) {
	if se.owner == nil {
		return "", "", ""
	}
	return se.owner.id.Namespace, se.owner.id.Pod, se.owner.id.Container
}

// labelValues are the values of listenerLabels.
func (se *series) labelValues() []string {
	ns, pod, ctr := se.identityLabels()
	return append(se.key.labels(), ns, pod, ctr)
}

// otherLabels are the folded series': no workload.
var otherLabels = []string{Other, Other, Other, "", "", ""}

// collectInfo sends synq_listener_info for a series with an owner.
func (e *Exporter) collectInfo(ch chan<- prometheus.Metric, se *series, netnsName string) {
	o := se.owner
	if o == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(descListenerInfo, prometheus.GaugeValue, 1, append(se.labelValues(),
		o.id.Unit, o.id.ContainerID, o.id.Runtime, o.id.PodUID, strconv.Itoa(o.pid), o.comm, netnsName)...)
}

// netnsPods are the pods namespaces belong to: a namespace's is the pod of
// every listener of it with a slot and a known owner (none when they differ
// or one is no pod's, as in the host namespace that hostNetwork pods share
// with services).
func (e *Exporter) netnsPods() map[uint32][2]string {
	out := map[uint32][2]string{}
	mixed := map[uint32]bool{}
	for _, se := range e.series {
		if !se.slotted || se.owner == nil {
			continue
		}
		p := [2]string{se.owner.id.Namespace, se.owner.id.Pod}
		if q, ok := out[se.netns]; ok && q != p {
			mixed[se.netns] = true
		}
		out[se.netns] = p
	}
	for ns := range mixed {
		delete(out, ns)
	}
	return out
}
