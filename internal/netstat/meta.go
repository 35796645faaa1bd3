package netstat

import (
	"regexp"
	"strings"
)

// Counter describes one counter for an operator.
type Counter struct {
	// Name as the kernel prints it, "TcpExt.ListenOverflows".
	Name string
	// NodeExporter is the metric node_exporter's netstat collector gives
	// it: node_netstat_<Prefix>_<Name>.
	NodeExporter string
	// NodeExporterDefault is true when node_exporter exports it with its
	// default --collector.netstat.fields; others need that flag widened.
	NodeExporterDefault bool
	// Meaning is what the counter counts, "" if synq has no description.
	Meaning string
	// NetTools is true when Meaning is the sentence `netstat -s` prints
	// for it (net-tools 2.10 statistics.c, the number shown as N or
	// dropped when it leads). False means the wording is synq's: net-tools
	// prints only "Name: value" for counters it has no sentence for.
	NetTools bool
	// Gauge marks values that are a level, not a running count: rates and
	// deltas of them mean nothing.
	Gauge bool
}

// nodeExporterDefault is node_exporter's default --collector.netstat.fields
// (collector/netstat_linux.go, 1.8+).
var nodeExporterDefault = regexp.MustCompile(`^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|Icmp6?_(InMsgs|OutMsgs)|TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|TCPTimeouts|TCPOFOQueue|TCPRcvQDrop)|Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|RetransSegs|CurrEstab)|Udp6?_(InDatagrams|OutDatagrams|NoPorts|RcvbufErrors|SndbufErrors))$`)

// DefaultSet is what `synq stats` shows without arguments: traffic volume,
// the listen path (queue overflows, SYN cookies, SYN retransmits) and the
// usual suspects of loss and delay.
var DefaultSet = []string{
	"Ip.InReceives", "Ip.ForwDatagrams",
	"Tcp.ActiveOpens", "Tcp.PassiveOpens", "Tcp.InSegs", "Tcp.OutSegs", "Tcp.RetransSegs",
	"TcpExt.PruneCalled", "TcpExt.TW", "TcpExt.DelayedACKs", "TcpExt.DelayedACKLocked",
	"TcpExt.DelayedACKLost", "TcpExt.TCPHPHits", "TcpExt.TCPHPAcks", "TcpExt.TCPSackRecovery",
	"TcpExt.TCPLossUndo", "TcpExt.TCPFastRetrans", "TcpExt.TCPRcvCollapsed",
	"TcpExt.ListenOverflows", "TcpExt.ListenDrops", "TcpExt.TCPReqQFullDrop",
	"TcpExt.TCPReqQFullDoCookies", "TcpExt.SyncookiesSent", "TcpExt.SyncookiesRecv",
	"TcpExt.SyncookiesFailed", "TcpExt.TCPSynRetrans", "TcpExt.TCPTimeouts", "TcpExt.TCPBacklogDrop",
}

// Describe returns what synq knows about a counter. Every name gets its
// node_exporter metric; Meaning is "" for counters not in the table.
func Describe(name string) Counter {
	c := meta[name]
	c.Name = name
	c.NodeExporter = "node_netstat_" + strings.Replace(name, ".", "_", 1)
	c.NodeExporterDefault = nodeExporterDefault.MatchString(strings.Replace(name, ".", "_", 1))
	return c
}

// Known lists the counters in the metadata table, sorted like Names. Some
// are absent from any recent kernel (TcpExt.TCPPrequeued went with the
// prequeue in Linux 4.14); callers report those as not on this kernel.
func Known() []string {
	out := make([]string, 0, len(meta))
	for k := range meta {
		out = append(out, k)
	}
	SortNames(out)
	return out
}

// meta is keyed by counter name. nt entries carry net-tools' sentence
// verbatim; sq entries are synq's wording.
var meta = map[string]Counter{}

func nt(name, sentence string) { meta[name] = Counter{Meaning: sentence, NetTools: true} }
func sq(name, meaning string)  { meta[name] = Counter{Meaning: meaning} }

func gauge(names ...string) {
	for _, n := range names {
		c := meta[n]
		c.Gauge = true
		meta[n] = c
	}
}

func init() {
	// net/snmp "Ip:" — net-tools Iptab.
	nt("Ip.DefaultTTL", "Default TTL is N")
	nt("Ip.ForwDatagrams", "forwarded")
	nt("Ip.FragCreates", "fragments created")
	nt("Ip.FragFails", "outgoing packets failed fragmentation")
	nt("Ip.FragOKs", "outgoing packets fragmented ok")
	nt("Ip.InAddrErrors", "with invalid addresses")
	nt("Ip.InDelivers", "incoming packets delivered")
	nt("Ip.InDiscards", "incoming packets discarded")
	nt("Ip.InHdrErrors", "with invalid headers")
	nt("Ip.InReceives", "total packets received")
	nt("Ip.InUnknownProtos", "with unknown protocol")
	nt("Ip.OutDiscards", "outgoing packets dropped")
	nt("Ip.OutNoRoutes", "dropped because of missing route")
	nt("Ip.OutRequests", "requests sent out")
	nt("Ip.ReasmFails", "packet reassemblies failed")
	nt("Ip.ReasmOKs", "packets reassembled ok")
	nt("Ip.ReasmReqds", "reassemblies required")
	nt("Ip.ReasmTimeout", "fragments dropped after timeout")
	// net-tools prints "Forwarding is enabled" for 2, but RFC 1213 and the
	// kernel (net/ipv4/proc.c) use 1 = forwarding, 2 = not forwarding.
	sq("Ip.Forwarding", "IP forwarding: 1 = on, 2 = off (RFC 1213; netstat -s words it inverted)")
	sq("Ip.OutTransmits", "IP packets handed to the link layer, forwarded ones included")

	// net/snmp6 "Ip6" — net-tools Ip6tab.
	nt("Ip6.FragCreates", "fragments created")
	nt("Ip6.FragFails", "outgoing packets failed fragmentation")
	nt("Ip6.FragOKs", "outgoing packets fragmented ok")
	nt("Ip6.InAddrErrors", "with invalid addresses")
	nt("Ip6.InDelivers", "incoming packets delivered")
	nt("Ip6.InDiscards", "incoming packets discarded")
	nt("Ip6.InHdrErrors", "with invalid headers")
	nt("Ip6.InMcastPkts", "incoming multicast packets")
	nt("Ip6.InNoRoutes", "incoming packets with no route")
	nt("Ip6.InReceives", "total packets received")
	nt("Ip6.InTooBigErrors", "with packets too big")
	nt("Ip6.InTruncatedPkts", "with truncated packets")
	nt("Ip6.InUnknownProtos", "with unknown protocol")
	nt("Ip6.OutDiscards", "outgoing packets dropped")
	nt("Ip6.OutForwDatagrams", "forwarded")
	nt("Ip6.OutMcastPkts", "outgoing multicast packets")
	nt("Ip6.OutNoRoutes", "dropped because of missing route")
	nt("Ip6.OutRequests", "requests sent out")
	nt("Ip6.ReasmFails", "packet reassemblies failed")
	nt("Ip6.ReasmOKs", "packets reassembled ok")
	nt("Ip6.ReasmReqds", "reassemblies required")
	nt("Ip6.ReasmTimeout", "fragments dropped after timeout")
	sq("Ip6.InOctets", "bytes received in IPv6 packets")
	sq("Ip6.OutOctets", "bytes sent in IPv6 packets")
	sq("Ip6.InMcastOctets", "bytes received in multicast packets")
	sq("Ip6.OutMcastOctets", "bytes sent in multicast packets")
	sq("Ip6.InBcastOctets", "bytes received in broadcast packets (always 0: IPv6 has no broadcast)")
	sq("Ip6.OutBcastOctets", "bytes sent in broadcast packets (always 0: IPv6 has no broadcast)")
	sq("Ip6.InNoECTPkts", "packets received not ECN-capable (Not-ECT)")
	sq("Ip6.InECT1Pkts", "packets received marked ECT(1)")
	sq("Ip6.InECT0Pkts", "packets received marked ECT(0)")
	sq("Ip6.InCEPkts", "packets received marked CE (congestion experienced)")
	sq("Ip6.OutTransmits", "IPv6 packets handed to the link layer, forwarded ones included")

	// "Icmp:" — net-tools Icmptab. The per-type lines are printed under
	// "ICMP input histogram:" / "ICMP output histogram:".
	nt("Icmp.InMsgs", "ICMP messages received")
	nt("Icmp.InErrors", "input ICMP message failed")
	nt("Icmp.OutMsgs", "ICMP messages sent")
	nt("Icmp.OutErrors", "ICMP messages failed")
	for _, e := range [][2]string{
		{"InAddrMaskReps", "address mask replies: N"}, {"InAddrMasks", "address mask request: N"},
		{"InDestUnreachs", "destination unreachable: N"}, {"InEchoReps", "echo replies: N"},
		{"InEchos", "echo requests: N"}, {"InParmProbs", "wrong parameters: N"},
		{"InRedirects", "redirects: N"}, {"InSrcQuenchs", "source quenches: N"},
		{"InTimeExcds", "timeout in transit: N"}, {"InTimestampReps", "timestamp reply: N"},
		{"InTimestamps", "timestamp request: N"},
	} {
		nt("Icmp."+e[0], "ICMP input histogram: "+e[1])
	}
	for _, e := range [][2]string{
		{"OutAddrMaskReps", "address mask replies: N"}, {"OutAddrMasks", "address mask requests: N"},
		{"OutDestUnreachs", "destination unreachable: N"}, {"OutEchoReps", "echo replies: N"},
		{"OutEchos", "echo requests: N"}, {"OutParmProbs", "wrong parameters: N"},
		{"OutRedirects", "redirect: N"}, {"OutSrcQuenchs", "source quench: N"},
		{"OutTimeExcds", "time exceeded: N"}, {"OutTimestampReps", "timestamp replies: N"},
		{"OutTimestamps", "timestamp requests: N"},
	} {
		nt("Icmp."+e[0], "ICMP output histogram: "+e[1])
	}
	sq("Icmp.InCsumErrors", "ICMP messages received with a bad checksum")
	sq("Icmp.OutRateLimitGlobal", "ICMP messages not sent: global rate limit (icmp_msgs_per_sec)")
	sq("Icmp.OutRateLimitHost", "ICMP messages not sent: per-destination rate limit (icmp_ratelimit)")

	// "Icmp6" — net-tools Icmp6tab.
	nt("Icmp6.InMsgs", "ICMP messages received")
	nt("Icmp6.InErrors", "input ICMP message failed")
	nt("Icmp6.OutMsgs", "ICMP messages sent")
	for _, e := range [][2]string{
		{"InDestUnreachs", "destination unreachable: N"}, {"InEchoReplies", "echo replies: N"},
		{"InEchos", "echo requests: N"}, {"InGroupMembQueries", "group member queries: N"},
		{"InGroupMembReductions", "group member reductions: N"}, {"InGroupMembResponses", "group member responses: N"},
		{"InNeighborAdvertisements", "neighbour advertisement: N"}, {"InNeighborSolicits", "neighbour solicits: N"},
		{"InParmProblems", "parameter problem: N"}, {"InPktTooBigs", "packets too big: N"},
		{"InRedirects", "redirects: N"}, {"InRouterAdvertisements", "router advertisement: N"},
		{"InRouterSolicits", "router solicits: N"}, {"InTimeExcds", "received ICMPv6 time exceeded: N"},
	} {
		nt("Icmp6."+e[0], "ICMP input histogram: "+e[1])
	}
	for _, e := range [][2]string{
		{"OutDestUnreachs", "destination unreachable: N"}, {"OutEchoReplies", "echo replies: N"},
		{"OutEchos", "echo requests: N"}, {"OutGroupMembQueries", "group member queries: N"},
		{"OutGroupMembReductions", "group member reductions: N"}, {"OutGroupMembResponses", "group member responses: N"},
		{"OutNeighborAdvertisements", "neighbor advertisements: N"}, {"OutNeighborSolicits", "neighbor solicits: N"},
		{"OutParmProblems", "parameter problem: N"}, {"OutPktTooBigs", "packets too big: N"},
		{"OutRedirects", "redirects: N"}, {"OutRouterSolicits", "router solicits: N"},
		{"OutTimeExcds", "sent ICMPv6 time exceeded: N"},
	} {
		nt("Icmp6."+e[0], "ICMP output histogram: "+e[1])
	}
	// net-tools' entry is "Icmp6OutRouterAdvertisements " with a trailing
	// space, so it never matches and netstat -s prints the bare name.
	sq("Icmp6.OutRouterAdvertisements", "ICMP output histogram: router advertisements sent")
	sq("Icmp6.OutErrors", "ICMPv6 messages not sent because of an error")
	sq("Icmp6.InCsumErrors", "ICMPv6 messages received with a bad checksum")
	sq("Icmp6.OutRateLimitHost", "ICMPv6 messages not sent: per-destination rate limit")
	sq("Icmp6.InMLDv2Reports", "MLDv2 reports received")
	sq("Icmp6.OutMLDv2Reports", "MLDv2 reports sent")

	// "Tcp:" — net-tools Tcptab (RtoAlgorithm, RtoMin, RtoMax and MaxConn
	// have no sentence there).
	nt("Tcp.ActiveOpens", "active connection openings")
	nt("Tcp.AttemptFails", "failed connection attempts")
	nt("Tcp.CurrEstab", "connections established")
	nt("Tcp.EstabResets", "connection resets received")
	nt("Tcp.InErrs", "bad segments received")
	nt("Tcp.InSegs", "segments received")
	nt("Tcp.OutRsts", "resets sent")
	nt("Tcp.OutSegs", "segments sent out")
	nt("Tcp.PassiveOpens", "passive connection openings")
	nt("Tcp.RetransSegs", "segments retransmitted")
	sq("Tcp.RtoAlgorithm", "retransmission timeout algorithm (RFC 2012; Linux always reports 1, other)")
	sq("Tcp.RtoMin", "minimum retransmission timeout, ms")
	sq("Tcp.RtoMax", "maximum retransmission timeout, ms")
	sq("Tcp.MaxConn", "limit on TCP connections; -1 means none (RFC 2012)")
	sq("Tcp.InCsumErrors", "segments received with a bad TCP checksum")

	// "Udp:" / "Udp6" — net-tools Udptab, Udp6tab.
	nt("Udp.InDatagrams", "packets received")
	nt("Udp.InErrors", "packet receive errors")
	nt("Udp.NoPorts", "packets to unknown port received")
	nt("Udp.OutDatagrams", "packets sent")
	nt("Udp.RcvbufErrors", "receive buffer errors")
	nt("Udp.SndbufErrors", "send buffer errors")
	sq("Udp.InCsumErrors", "datagrams received with a bad UDP checksum")
	sq("Udp.IgnoredMulti", "broadcast/multicast datagrams no socket wanted")
	sq("Udp.MemErrors", "datagrams dropped: socket memory limits (udp_mem) reached")
	nt("Udp6.InDatagrams", "packets received")
	nt("Udp6.InErrors", "packet receive errors")
	nt("Udp6.NoPorts", "packets to unknown port received")
	nt("Udp6.OutDatagrams", "packets sent")
	sq("Udp6.RcvbufErrors", "datagrams dropped: socket receive buffer full")
	sq("Udp6.SndbufErrors", "datagrams not sent: socket send buffer full")
	sq("Udp6.InCsumErrors", "datagrams received with a bad UDP checksum")
	sq("Udp6.IgnoredMulti", "multicast datagrams no socket wanted")
	sq("Udp6.MemErrors", "datagrams dropped: socket memory limits (udp_mem) reached")

	// net/netstat "TcpExt:" — net-tools Tcpexttab.
	nt("TcpExt.DelayedACKLocked", "delayed acks further delayed because of locked socket")
	nt("TcpExt.DelayedACKLost", "Quick ack mode was activated N times")
	nt("TcpExt.DelayedACKs", "delayed acks sent")
	nt("TcpExt.EmbryonicRsts", "resets received for embryonic SYN_RECV sockets")
	nt("TcpExt.ListenDrops", "SYNs to LISTEN sockets dropped")
	nt("TcpExt.ListenOverflows", "times the listen queue of a socket overflowed")
	nt("TcpExt.LockDroppedIcmps", "ICMP packets dropped because socket was locked")
	nt("TcpExt.OfoPruned", "packets dropped from out-of-order queue because of socket buffer overrun")
	nt("TcpExt.OutOfWindowIcmps", "ICMP packets dropped because they were out-of-window")
	nt("TcpExt.PAWSActive", "active connections rejected because of time stamp")
	nt("TcpExt.PAWSEstab", "packets rejected in established connections because of timestamp")
	nt("TcpExt.PAWSPassive", "passive connections rejected because of time stamp")
	nt("TcpExt.PruneCalled", "packets pruned from receive queue because of socket buffer overrun")
	nt("TcpExt.RcvPruned", "packets pruned from receive queue")
	nt("TcpExt.SyncookiesFailed", "invalid SYN cookies received")
	nt("TcpExt.SyncookiesRecv", "SYN cookies received")
	nt("TcpExt.SyncookiesSent", "SYN cookies sent")
	nt("TcpExt.TCPAbortFailed", "times unable to send RST due to no memory")
	nt("TcpExt.TCPAbortOnClose", "connections reset due to early user close")
	nt("TcpExt.TCPAbortOnData", "connections reset due to unexpected data")
	nt("TcpExt.TCPAbortOnLinger", "connections aborted after user close in linger timeout")
	nt("TcpExt.TCPAbortOnMemory", "connections aborted due to memory pressure")
	nt("TcpExt.TCPAbortOnSyn", "connections reset due to unexpected SYN")
	nt("TcpExt.TCPAbortOnTimeout", "connections aborted due to timeout")
	// The prequeue (and its counters) was removed in Linux 4.14.
	nt("TcpExt.TCPDirectCopyFromBacklog", "bytes directly in process context from backlog")
	nt("TcpExt.TCPDirectCopyFromPrequeue", "bytes directly received in process context from prequeue")
	nt("TcpExt.TCPPrequeued", "packets directly queued to recvmsg prequeue")
	nt("TcpExt.TCPPrequeueDropped", "packets dropped from prequeue")
	nt("TcpExt.TCPHPHitsToUser", "packet headers predicted and directly queued to user")
	nt("TcpExt.TCPDSACKOfoRecv", "DSACKs for out of order packets received")
	nt("TcpExt.TCPDSACKOfoSent", "DSACKs sent for out of order packets")
	nt("TcpExt.TCPDSACKOldSent", "DSACKs sent for old packets")
	nt("TcpExt.TCPDSACKRecv", "DSACKs received")
	nt("TcpExt.TCPDSACKUndo", "congestion windows recovered without slow start by DSACK")
	nt("TcpExt.TCPFACKReorder", "Detected reordering N times using FACK")
	nt("TcpExt.TCPFastRetrans", "fast retransmits")
	nt("TcpExt.TCPForwardRetrans", "forward retransmits")
	nt("TcpExt.TCPFullUndo", "congestion windows fully recovered without slow start")
	nt("TcpExt.TCPHPAcks", "predicted acknowledgments")
	nt("TcpExt.TCPHPHits", "packet headers predicted")
	nt("TcpExt.TCPLossFailures", "timeouts in loss state")
	nt("TcpExt.TCPLoss", "TCP data loss events")
	nt("TcpExt.TCPLossUndo", "congestion windows recovered without slow start after partial ack")
	nt("TcpExt.TCPMemoryPressures", "TCP ran low on memory N times")
	nt("TcpExt.TCPPartialUndo", "congestion windows partially recovered using Hoe heuristic")
	nt("TcpExt.TCPPureAcks", "acknowledgments not containing data payload received")
	nt("TcpExt.TCPRcvCollapsed", "packets collapsed in receive queue due to low socket buffer")
	nt("TcpExt.TCPRenoFailures", "timeouts after reno fast retransmit")
	nt("TcpExt.TCPRenoRecoveryFail", "classic Reno fast retransmits failed")
	nt("TcpExt.TCPRenoRecovery", "times recovered from packet loss due to fast retransmit")
	nt("TcpExt.TCPRenoReorder", "Detected reordering N times using reno fast retransmit")
	nt("TcpExt.TCPSackFailures", "timeouts after SACK recovery")
	nt("TcpExt.TCPSackRecoveryFail", "SACK retransmits failed")
	nt("TcpExt.TCPSackRecovery", "times recovered from packet loss by selective acknowledgements")
	nt("TcpExt.TCPSACKReneging", "bad SACK blocks received")
	nt("TcpExt.TCPSACKReorder", "Detected reordering N times using SACK")
	nt("TcpExt.TCPSchedulerFailed", "times receiver scheduled too late for direct processing")
	nt("TcpExt.TCPSlowStartRetrans", "retransmits in slow start")
	nt("TcpExt.TCPTimeouts", "other TCP timeouts")
	nt("TcpExt.TCPTSReorder", "Detected reordering N times using time stamp")
	nt("TcpExt.TWKilled", "TCP sockets finished time wait in slow timer")
	nt("TcpExt.TW", "TCP sockets finished time wait in fast timer")
	nt("TcpExt.TWRecycled", "time wait sockets recycled by time stamp")

	// TcpExt counters net-tools has no sentence for (it prints
	// "Name: value"). Sources: include/uapi/linux/snmp.h and the
	// increments in net/ipv4/tcp*.c; Documentation/networking/snmp_counter.rst.
	sq("TcpExt.TCPReqQFullDrop", "SYNs dropped because the SYN queue was full and SYN cookies are off")
	sq("TcpExt.TCPReqQFullDoCookies", "SYN cookies sent because the SYN queue was full (every cookie with tcp_syncookies=2)")
	sq("TcpExt.TCPSynRetrans", "SYN and SYN-ACK retransmissions")
	sq("TcpExt.TCPBacklogDrop", "segments dropped: the socket was busy in a syscall and its backlog was over its buffer limit")
	sq("TcpExt.TCPDeferAcceptDrop", "bare ACKs dropped on a TCP_DEFER_ACCEPT listener (the connection waits for data)")
	sq("TcpExt.TCPMigrateReqSuccess", "requests moved to another SO_REUSEPORT listener when theirs closed")
	sq("TcpExt.TCPMigrateReqFailure", "requests that could not be moved to another SO_REUSEPORT listener and were dropped")
	sq("TcpExt.TCPTimeWaitOverflow", "TIME_WAIT sockets not created: tcp_max_tw_buckets reached")
	sq("TcpExt.TCPRcvQDrop", "segments dropped: receive buffer full and memory could not be obtained")
	sq("TcpExt.TCPZeroWindowDrop", "segments dropped: they arrived while the receive window was zero")
	sq("TcpExt.TCPOFOQueue", "segments queued out of order")
	sq("TcpExt.TCPOFODrop", "out-of-order segments dropped: no receive memory")
	sq("TcpExt.TCPOFOMerge", "out-of-order segments that overlapped queued ones and were merged")
	sq("TcpExt.TCPRcvCoalesce", "segments merged into the previous one in the receive queue")
	sq("TcpExt.TCPBacklogCoalesce", "segments merged into the previous one in the socket backlog")
	sq("TcpExt.TCPLostRetransmit", "retransmitted segments that were lost again")
	sq("TcpExt.TCPLossProbes", "tail loss probes sent")
	sq("TcpExt.TCPLossProbeRecovery", "losses repaired by a tail loss probe")
	sq("TcpExt.TCPSpuriousRTOs", "retransmission timeouts found spurious (F-RTO)")
	sq("TcpExt.TCPSpuriousRtxHostQueues", "retransmits skipped: the original was still in a host queue")
	sq("TcpExt.TCPRetransFail", "retransmits the IP layer refused (no memory, qdisc drop)")
	sq("TcpExt.TCPOrigDataSent", "segments sent carrying new data (not retransmits)")
	sq("TcpExt.TCPDelivered", "segments the peer acknowledged (delivered)")
	sq("TcpExt.TCPDeliveredCE", "delivered segments the peer reported as ECN CE-marked")
	sq("TcpExt.TCPChallengeACK", "challenge ACKs sent (RFC 5961)")
	sq("TcpExt.TCPSYNChallenge", "challenge ACKs sent in reply to a SYN on a synchronized connection")
	sq("TcpExt.TCPKeepAlive", "keepalive probes sent")
	sq("TcpExt.TCPWinProbe", "window probes sent")
	sq("TcpExt.TCPMemoryPressuresChrono", "milliseconds TCP spent under memory pressure")
	sq("TcpExt.PFMemallocDrop", "segments dropped: emergency-reserve memory for a socket not allowed to use it")
	sq("TcpExt.TCPMinTTLDrop", "segments dropped: TTL below the socket's IP_MINTTL")
	sq("TcpExt.IPReversePathFilter", "packets dropped by reverse path filtering (rp_filter)")
	sq("TcpExt.ArpFilter", "ARP requests not answered because of arp_filter")
	sq("TcpExt.PAWSOldAck", "old ACKs dropped by the PAWS timestamp check")
	sq("TcpExt.PAWSTimewait", "segments to TIME_WAIT sockets dropped by the PAWS timestamp check")
	sq("TcpExt.BeyondWindow", "segments dropped: they lie beyond the receive window")
	sq("TcpExt.TSEcrRejected", "segments dropped: their timestamp echo (TSecr) was invalid")
	sq("TcpExt.TCPSACKDiscard", "SACK blocks discarded as invalid")
	sq("TcpExt.TCPDSACKIgnoredOld", "DSACK blocks ignored as too old")
	sq("TcpExt.TCPDSACKIgnoredNoUndo", "DSACK blocks ignored: no undo was pending")
	sq("TcpExt.TCPDSACKIgnoredDubious", "DSACK blocks ignored as dubious")
	sq("TcpExt.TCPDSACKRecvSegs", "segments covered by DSACK blocks received")
	sq("TcpExt.TCPSackShifted", "SACKed segments shifted into the previous one")
	sq("TcpExt.TCPSackMerged", "SACKed segments merged into the previous one")
	sq("TcpExt.TCPSackShiftFallback", "SACKs that could not shift or merge segments")
	sq("TcpExt.TCPMD5NotFound", "segments dropped: TCP-MD5 signature expected but absent")
	sq("TcpExt.TCPMD5Unexpected", "segments dropped: TCP-MD5 signature present but not expected")
	sq("TcpExt.TCPMD5Failure", "segments dropped: TCP-MD5 signature did not verify")
	sq("TcpExt.TCPAORequired", "segments dropped: TCP-AO required but absent")
	sq("TcpExt.TCPAOBad", "segments dropped: TCP-AO signature did not verify")
	sq("TcpExt.TCPAOKeyNotFound", "segments dropped: no matching TCP-AO key")
	sq("TcpExt.TCPAOGood", "segments with a valid TCP-AO signature")
	sq("TcpExt.TCPAODroppedIcmps", "ICMP messages ignored on TCP-AO connections")
	sq("TcpExt.TCPFastOpenActive", "TCP Fast Open SYNs whose data the peer acknowledged")
	sq("TcpExt.TCPFastOpenActiveFail", "TCP Fast Open SYNs sent whose data was not acknowledged")
	sq("TcpExt.TCPFastOpenPassive", "TCP Fast Open connections accepted with data in the SYN")
	sq("TcpExt.TCPFastOpenPassiveFail", "TCP Fast Open requests refused (bad cookie, child not created)")
	sq("TcpExt.TCPFastOpenPassiveAltKey", "TCP Fast Open cookies accepted with the backup key")
	sq("TcpExt.TCPFastOpenListenOverflow", "TCP Fast Open requests refused: the listener's TFO queue was full")
	sq("TcpExt.TCPFastOpenCookieReqd", "SYNs received asking for a TCP Fast Open cookie")
	sq("TcpExt.TCPFastOpenBlackhole", "times TCP Fast Open was disabled after a suspected blackhole")
	sq("TcpExt.TCPAutoCorking", "small sends held back by TCP autocorking")
	sq("TcpExt.TCPFromZeroWindowAdv", "times the advertised window reopened from zero")
	sq("TcpExt.TCPToZeroWindowAdv", "times a zero window was advertised")
	sq("TcpExt.TCPWantZeroWindowAdv", "times the computed receive window was zero")
	sq("TcpExt.TCPACKSkippedSynRecv", "ACKs not sent in SYN_RECV (tcp_invalid_ratelimit)")
	sq("TcpExt.TCPACKSkippedPAWS", "ACKs not sent for PAWS-rejected segments (tcp_invalid_ratelimit)")
	sq("TcpExt.TCPACKSkippedSeq", "ACKs not sent for out-of-window segments (tcp_invalid_ratelimit)")
	sq("TcpExt.TCPACKSkippedFinWait2", "ACKs not sent in FIN_WAIT2 (tcp_invalid_ratelimit)")
	sq("TcpExt.TCPACKSkippedTimeWait", "ACKs not sent in TIME_WAIT (tcp_invalid_ratelimit)")
	sq("TcpExt.TCPACKSkippedChallenge", "challenge ACKs not sent (rate limited)")
	sq("TcpExt.TCPAckCompressed", "ACKs held back and compressed into a later one")
	sq("TcpExt.TCPHystartTrainDetect", "slow start exits by HyStart ACK-train detection")
	sq("TcpExt.TCPHystartTrainCwnd", "sum of cwnd at HyStart ACK-train exits")
	sq("TcpExt.TCPHystartDelayDetect", "slow start exits by HyStart delay detection")
	sq("TcpExt.TCPHystartDelayCwnd", "sum of cwnd at HyStart delay exits")
	sq("TcpExt.TCPMTUPFail", "path MTU probes that failed")
	sq("TcpExt.TCPMTUPSuccess", "path MTU probes that succeeded")
	sq("TcpExt.TCPWqueueTooBig", "sends or splits refused: the write queue held too many packets")
	sq("TcpExt.TcpTimeoutRehash", "times a retransmission timeout made the flow pick a new path hash")
	sq("TcpExt.TcpDuplicateDataRehash", "times duplicate data received made the flow pick a new path hash")
	sq("TcpExt.TCPPLBRehash", "path rehashes by Protective Load Balancing")
	sq("TcpExt.BusyPollRxPackets", "packets received by busy polling")

	// "IpExt:".
	sq("IpExt.InNoRoutes", "packets dropped: no route")
	sq("IpExt.InTruncatedPkts", "packets shorter than their IP header claims")
	sq("IpExt.InMcastPkts", "multicast packets received")
	sq("IpExt.OutMcastPkts", "multicast packets sent")
	sq("IpExt.InBcastPkts", "broadcast packets received")
	sq("IpExt.OutBcastPkts", "broadcast packets sent")
	sq("IpExt.InOctets", "bytes received in IPv4 packets")
	sq("IpExt.OutOctets", "bytes sent in IPv4 packets")
	sq("IpExt.InMcastOctets", "bytes received in multicast packets")
	sq("IpExt.OutMcastOctets", "bytes sent in multicast packets")
	sq("IpExt.InBcastOctets", "bytes received in broadcast packets")
	sq("IpExt.OutBcastOctets", "bytes sent in broadcast packets")
	sq("IpExt.InCsumErrors", "packets received with a bad IP header checksum")
	sq("IpExt.InNoECTPkts", "packets received not ECN-capable (Not-ECT)")
	sq("IpExt.InECT1Pkts", "packets received marked ECT(1)")
	sq("IpExt.InECT0Pkts", "packets received marked ECT(0)")
	sq("IpExt.InCEPkts", "packets received marked CE (congestion experienced)")
	sq("IpExt.ReasmOverlaps", "fragments dropped: they overlapped others")

	gauge("Ip.Forwarding", "Ip.DefaultTTL", "Tcp.RtoAlgorithm", "Tcp.RtoMin", "Tcp.RtoMax",
		"Tcp.MaxConn", "Tcp.CurrEstab", "MPTcpExt.MPCurrEstab")
}
