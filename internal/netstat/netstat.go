// Package netstat reads the kernel's SNMP and extended TCP/IP counters
// (net/netstat, net/snmp, net/snmp6: what `netstat -s`, nstat and
// node_exporter's netstat collector show), per network namespace.
package netstat

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/synq-trace/synq/internal/netns"
)

// Snapshot holds every counter of one read, keyed "Prefix.Name" as the
// kernel names them: "TcpExt.ListenOverflows", "Tcp.RetransSegs",
// "Ip.InReceives", "Ip6.InReceives". A name the running kernel does not
// print is absent, never zero.
type Snapshot map[string]int64

// Files are the files Read parses, relative to a net directory.
var Files = []string{"netstat", "snmp", "snmp6"}

// Read parses netstat, snmp and snmp6 in dir: /proc/net for this process's
// namespace, /proc/PID/net, /proc/thread-self/net, or a directory of
// captures. snmp6 may be missing (IPv6 disabled at boot); the others may
// not.
func Read(dir string) (Snapshot, error) {
	s := make(Snapshot, 512)
	for _, f := range Files {
		p := filepath.Join(dir, f)
		b, err := os.ReadFile(p)
		if err != nil {
			if f == "snmp6" && errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("read counters: %w", err)
		}
		parse := ParseTable
		if f == "snmp6" {
			parse = ParseSNMP6
		}
		if err := parse(b, s); err != nil {
			return nil, fmt.Errorf("parse %s: %w", p, err)
		}
	}
	return s, nil
}

// ReadMIB reads net/netstat and net/snmp of the calling thread's network
// namespace (/proc/thread-self/net: inside netns.NS.Do, that namespace), not
// snmp6: nothing synq reconciles is there, and it is the slowest to print.
// The caller locks the thread (Do does).
func ReadMIB() (Snapshot, error) {
	s := make(Snapshot, 256)
	for _, f := range Files[:2] {
		p := "/proc/thread-self/net/" + f
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read counters: %w", err)
		}
		if err := ParseTable(b, s); err != nil {
			return nil, fmt.Errorf("parse %s: %w", p, err)
		}
	}
	return s, nil
}

// ReadNetns reads the counters of a network namespace. Inside ns.Do it
// reads /proc/thread-self/net: /proc/self/net and /proc/net follow the
// thread-group leader, which stays in the process's namespace.
func ReadNetns(ns netns.NS) (Snapshot, error) {
	var s Snapshot
	err := ns.Do(func() error {
		var err error
		s, err = Read("/proc/thread-self/net")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("counters of netns %s: %w", ns, err)
	}
	return s, nil
}

// Delta is b - a for every counter in both. Counters only grow, except
// gauges (see Counter.Gauge) and a namespace that was recreated.
func Delta(a, b Snapshot) Snapshot {
	d := make(Snapshot, len(b))
	for k, vb := range b {
		if va, ok := a[k]; ok {
			d[k] = vb - va
		}
	}
	return d
}

// icmpType matches the per-ICMP-type counters. The kernel prints only the
// types seen so far (icmpmsg_put in net/ipv4/proc.c, snmp6_seq_show_icmpv6msg
// in net/ipv6/proc.c), so absent means zero, not "not on this kernel".
var icmpType = regexp.MustCompile(`^(IcmpMsg|Icmp6)\.(In|Out)Type([0-9]|[1-9][0-9]|1[0-9][0-9]|2[0-4][0-9]|25[0-5])$`)

// Get returns a counter's value and whether this kernel has it. Per-type
// ICMP counters that have not counted yet are present with 0.
func (s Snapshot) Get(name string) (int64, bool) {
	if v, ok := s[name]; ok {
		return v, true
	}
	if icmpType.MatchString(name) {
		return 0, true
	}
	return 0, false
}

// Names lists the counters in s sorted by prefix (in the order the files
// print them) and then by name.
func (s Snapshot) Names() []string {
	out := make([]string, 0, len(s))
	for k := range s {
		out = append(out, k)
	}
	SortNames(out)
	return out
}

// prefixOrder is the order of the groups in snmp, netstat and snmp6.
var prefixOrder = map[string]int{
	"Ip": 0, "Icmp": 1, "IcmpMsg": 2, "Tcp": 3, "Udp": 4, "UdpLite": 5,
	"TcpExt": 6, "IpExt": 7, "MPTcpExt": 8, "TlsExt": 9,
	"Ip6": 10, "Icmp6": 11, "Udp6": 12, "UdpLite6": 13,
}

// SortNames sorts counter names by group, then name.
func SortNames(names []string) {
	rank := func(n string) int {
		p, _, _ := strings.Cut(n, ".")
		if r, ok := prefixOrder[p]; ok {
			return r
		}
		return len(prefixOrder)
	}
	sort.SliceStable(names, func(i, j int) bool {
		ri, rj := rank(names[i]), rank(names[j])
		if ri != rj {
			return ri < rj
		}
		return names[i] < names[j]
	})
}

// Lookup turns what an operator typed into a counter name: the canonical
// "TcpExt.ListenOverflows", nstat's "TcpExtListenOverflows", node_exporter's
// "node_netstat_TcpExt_ListenOverflows" or "TcpExt_ListenOverflows", or a
// bare "ListenOverflows" when only one group has it. Matching ignores case.
// Names are looked up in s and in the metadata table, so a counter this
// kernel lacks (TCPPrequeued) still resolves.
func Lookup(s Snapshot, v string) (string, error) {
	want := strings.TrimPrefix(v, "node_netstat_")
	if icmpType.MatchString(want) {
		return want, nil
	}
	cands := make([]string, 0, len(s)+len(meta))
	for k := range s {
		cands = append(cands, k)
	}
	for k := range meta {
		if _, dup := s[k]; !dup {
			cands = append(cands, k)
		}
	}
	var m []string
	if i := strings.IndexAny(want, "._"); i > 0 {
		key := want[:i] + "." + want[i+1:]
		for _, k := range cands {
			if k == key {
				return k, nil // exact case wins over TCPDSACKUndo/TCPDSackUndo-style twins
			}
			if strings.EqualFold(k, key) {
				m = append(m, k)
			}
		}
	} else {
		// nstat's run-together form first, then a bare name.
		for _, k := range cands {
			if strings.EqualFold(strings.Replace(k, ".", "", 1), want) {
				m = append(m, k)
			}
		}
		if len(m) == 0 {
			for _, k := range cands {
				if _, name, _ := strings.Cut(k, "."); strings.EqualFold(name, want) {
					m = append(m, k)
				}
			}
		}
	}
	switch len(m) {
	case 0:
		return "", fmt.Errorf("unknown counter %q (synq stats --all lists them)", v)
	case 1:
		return m[0], nil
	default:
		SortNames(m)
		return "", fmt.Errorf("counter %q is ambiguous: %s", v, strings.Join(m, ", "))
	}
}
