package exporter

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/synq-trace/synq/internal/netstat"
)

// Every metric synq exports is described here, once. Listener series carry
// netns (inode), addr and port of the listening socket (the key: one series
// per key), and namespace, pod and container of the workload that owns it
// (empty where unknown), and nothing of the connections (no peer, no
// payload); listeners past --max-listeners are summed into netns="other",
// addr="other", port="other" with empty namespace, pod and container.
var listenerLabels = []string{"netns", "addr", "port", "namespace", "pod", "container"}

// Other is the value of every listener label of the folded series.
const Other = "other"

// Drop reasons. The fentry and kprobe tiers see the SYN side and name the
// reason; the tracepoint tier cannot see a SYN being dropped (the kernel
// consume_skb's it) and derives the SYN-side drops of a listener in total, as
// ListenDrops minus what it saw fail at the final ACK.
const (
	ReasonSynQueueFull    = "syn-queue-full"
	ReasonAcceptQueueFull = "accept-queue-full"
	ReasonAckOverflow     = "ack-overflow"
	ReasonOther           = "other"
	ReasonSynSide         = "syn-side"
)

var (
	descDrops = prometheus.NewDesc("synq_listen_drops_total",
		"Connections the listener dropped (the kernel's TcpExt.ListenDrops, per listener), by reason: "+
			"syn-queue-full and accept-queue-full (SYN dropped), ack-overflow (final ACK dropped: the client believes it is connected), "+
			"other. On the tracepoint tier SYN-side drops are only known in total: reason syn-side is ListenDrops minus ack-overflow.",
		append(listenerLabels, "reason"), nil)
	descCookies = prometheus.NewDesc("synq_syn_cookies_total",
		"SYN cookies the listener sent instead of queueing a request (TcpExt.SyncookiesSent). Absent on the tracepoint tier, which cannot see them.",
		listenerLabels, nil)
	descSyn = prometheus.NewDesc("synq_syn_total",
		"SYNs that reached the listener. Absent on the tracepoint tier, which cannot see them.",
		listenerLabels, nil)
	descEnqueued = prometheus.NewDesc("synq_enqueued_total",
		"Connections that completed the handshake and entered the listener's accept queue.",
		listenerLabels, nil)
	descAccepted = prometheus.NewDesc("synq_accepted_total",
		"Connections the application accepted from the listener.",
		listenerLabels, nil)
	descSynackRetrans = prometheus.NewDesc("synq_synack_retransmits_total",
		"SYN-ACKs the listener retransmitted because the final ACK did not come or was dropped.",
		listenerLabels, nil)
	descAcceptQueueLen = prometheus.NewDesc("synq_accept_queue_length",
		"Connections waiting for accept() at scrape time (sk_ack_backlog, ss Recv-Q).",
		listenerLabels, nil)
	descAcceptQueueMax = prometheus.NewDesc("synq_accept_queue_max",
		"Accept queue limit (sk_max_ack_backlog: the listen() backlog capped by net.core.somaxconn, ss Send-Q). "+
			"The kernel calls a queue full when its length is greater than this.",
		listenerLabels, nil)
	descSynQueueLen = prometheus.NewDesc("synq_syn_queue_length",
		"Requests waiting for the final ACK of the handshake (the SYN queue) at scrape time; full when greater than synq_accept_queue_max.",
		listenerLabels, nil)
	descLatency = prometheus.NewDesc("synq_accept_latency_seconds",
		"Time connections waited in the accept queue before the application accepted them, from the kernel's "+
			"per-listener histogram (exact count and sum; a bucket boundary is exact within 25%: never counted faster than it was).",
		listenerLabels, nil)
	descLost = prometheus.NewDesc("synq_events_lost_total",
		"Records synq lost: event records the ring buffer could not take and undecodable ones (no other metric misses them: "+
			"counters and the accept latency histogram are kept in kernel maps), and program runs the kernel skipped for recursion "+
			"(those are missing from the counters and the histogram too).",
		nil, nil)
	descKernel = prometheus.NewDesc("synq_kernel_netstat_total",
		"The kernel's own SNMP/netstat counters (the default set of synq stats) of a network namespace (netns: its inode), "+
			"by node_exporter name: name=X is node_netstat_X. Exported for synq's own namespace (or --netns) and for every "+
			"namespace with a listener that has series of its own (so at most --max-listeners + 1 namespaces); "+
			"synq_netns_info names the namespace and its pod. Counts since the namespace was created, not since synq started.",
		[]string{"netns", "name"}, nil)
	descKernelGauge = prometheus.NewDesc("synq_kernel_netstat_current",
		"The kernel's SNMP/netstat values of a network namespace that are levels, not counts "+
			"(e.g. Tcp_CurrEstab), by node_exporter name; the same namespaces as synq_kernel_netstat_total.",
		[]string{"netns", "name"}, nil)
	descCoverage = prometheus.NewDesc("synq_reconcile_coverage_ratio",
		"Drops synq attributed to the listeners of a network namespace (netns: its inode), divided by the increase of the "+
			"namespace's kernel counter since synq first read it (1: every drop explained; 1 when both are 0). "+
			"The same namespaces as synq_kernel_netstat_total; folded listeners count in their namespace's ratio.",
		[]string{"netns", "counter"}, nil)
	descListenerInfo = prometheus.NewDesc("synq_listener_info",
		"The owner of a listener with series of its own, always 1, for joins on (netns, addr, port): the process holding "+
			"its socket that names the workload best (pid, comm), its systemd unit, container id and runtime, pod UID, "+
			"and the name of its network namespace under /run/netns. Empty where unknown.",
		append(append([]string{}, listenerLabels...), "unit", "container_id", "runtime", "pod_uid", "pid", "comm", "netns_name"), nil)
	descNetnsInfo = prometheus.NewDesc("synq_netns_info",
		"A network namespace whose kernel counters synq exports, always 1, for joins on netns: its name under /run/netns, "+
			"and the Kubernetes namespace and pod its listeners belong to (empty unless every listener of it with series of "+
			"its own and a known owner is that pod's: the host namespace, which hostNetwork pods share with services, has none).",
		[]string{"netns", "netns_name", "namespace", "pod"}, nil)
	descBuildInfo = prometheus.NewDesc("synq_build_info",
		"synq's version, the attach tier it runs on and the kernel release; always 1.",
		[]string{"version", "tier", "kernel"}, nil)
)

// kernelSet is what synq_kernel_netstat_* export: the synq stats default
// set, and the established connections of the namespace (a gauge).
var kernelSet = append(append([]string{}, netstat.DefaultSet...), "Tcp.CurrEstab")

var allDescs = []*prometheus.Desc{
	descDrops, descCookies, descSyn, descEnqueued, descAccepted, descSynackRetrans,
	descAcceptQueueLen, descAcceptQueueMax, descSynQueueLen, descLatency,
	descLost, descKernel, descKernelGauge, descCoverage, descBuildInfo, descListenerInfo, descNetnsInfo,
	descSourceReads, descSourceErrors, descSourceSuccess,
}

// DefaultLatencyBuckets span a fast in-process accept (~100µs) to an
// application stalled for seconds.
var DefaultLatencyBuckets = []float64{
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
}
