package netstat

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// captureDirs lists the kernel captures: ours in testdata/6.18 and the
// per-series ones under the repository's testdata/procfs/<series>/, which
// may hold the files directly or under net/ or proc/net/.
func captureDirs(t testing.TB) map[string]string {
	t.Helper()
	dirs := map[string]string{"6.18": "testdata/6.18"}
	series, _ := filepath.Glob("../../testdata/procfs/*")
	for _, d := range series {
		for _, sub := range []string{"", "net", "proc/net"} {
			if _, err := os.Stat(filepath.Join(d, sub, "snmp")); err == nil {
				dirs["procfs/"+filepath.Base(d)] = filepath.Join(d, sub)
				break
			}
		}
	}
	return dirs
}

func readCapture(dir, name string) ([]byte, error) { return os.ReadFile(filepath.Join(dir, name)) }

func TestReadCaptures(t *testing.T) {
	for name, dir := range captureDirs(t) {
		t.Run(name, func(t *testing.T) {
			s, err := Read(dir)
			if err != nil {
				t.Fatal(err)
			}
			// Every name in the headers made it into the snapshot: the
			// parser dropped nothing.
			for _, f := range []string{"netstat", "snmp"} {
				b, err := readCapture(dir, f)
				if err != nil {
					t.Fatal(err)
				}
				lines := strings.Split(strings.TrimSpace(string(b)), "\n")
				for i := 0; i+1 < len(lines); i += 2 {
					f := strings.Fields(lines[i])
					p := strings.TrimSuffix(f[0], ":")
					for _, n := range f[1:] {
						if _, ok := s[p+"."+n]; !ok {
							t.Errorf("%s: %s.%s missing", f, p, n)
						}
					}
				}
			}
			if v, ok := s.Get("Tcp.MaxConn"); !ok || v != -1 {
				t.Errorf("Tcp.MaxConn = %d, %v; want -1 (RFC 2012: no limit)", v, ok)
			}
			for _, n := range DefaultSet {
				if _, ok := s.Get(n); !ok {
					t.Errorf("default counter %s not on this kernel", n)
				}
			}
			// Gone with the prequeue in 4.14: must be absent, not zero.
			for _, n := range []string{"TcpExt.TCPPrequeued", "TcpExt.TCPDirectCopyFromBacklog", "TcpExt.TCPDirectCopyFromPrequeue"} {
				if _, ok := s.Get(n); ok {
					t.Errorf("%s present on a kernel without prequeue", n)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, "snmp6")); err == nil {
				if _, ok := s["Ip6.InReceives"]; !ok {
					t.Error("Ip6.InReceives missing")
				}
			}
		})
	}
}

// TestMetaCoversCapture makes sure the kernel's TCP and IP counters all
// have a meaning, and that the table has no typo (a name no kernel prints
// that is not a known removed counter).
func TestMetaCoversCapture(t *testing.T) {
	s, err := Read("testdata/6.18")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range s.Names() {
		p, _, _ := strings.Cut(n, ".")
		switch p {
		case "MPTcpExt", "UdpLite", "UdpLite6", "IcmpMsg":
			continue // not described by synq
		}
		if strings.HasPrefix(n, "Icmp6.InType") || strings.HasPrefix(n, "Icmp6.OutType") {
			continue
		}
		if c := Describe(n); c.Meaning == "" {
			t.Errorf("%s has no meaning", n)
		}
	}
	removed := map[string]bool{
		"TcpExt.TCPPrequeued": true, "TcpExt.TCPDirectCopyFromBacklog": true,
		"TcpExt.TCPDirectCopyFromPrequeue": true, "TcpExt.TCPPrequeueDropped": true,
		"TcpExt.TCPHPHitsToUser": true, "TcpExt.TCPSchedulerFailed": true,
		"TcpExt.TCPFACKReorder": true, "TcpExt.TCPForwardRetrans": true,
		"TcpExt.PAWSPassive": true, "TcpExt.TCPLoss": true, "TcpExt.TCPAbortOnSyn": true,
	}
	for _, n := range Known() {
		if _, ok := s[n]; !ok && !removed[n] {
			t.Errorf("%s is in the table but not on 6.18: typo, or add it to the removed list", n)
		}
	}
}

func TestDescribe(t *testing.T) {
	tests := []struct {
		name, meaning, node string
		netTools, def       bool
	}{
		{"TcpExt.ListenOverflows", "times the listen queue of a socket overflowed", "node_netstat_TcpExt_ListenOverflows", true, true},
		{"TcpExt.ListenDrops", "SYNs to LISTEN sockets dropped", "node_netstat_TcpExt_ListenDrops", true, true},
		{"TcpExt.SyncookiesSent", "SYN cookies sent", "node_netstat_TcpExt_SyncookiesSent", true, true},
		{"Tcp.PassiveOpens", "passive connection openings", "node_netstat_Tcp_PassiveOpens", true, true},
		{"Tcp.RetransSegs", "segments retransmitted", "node_netstat_Tcp_RetransSegs", true, true},
		{"TcpExt.TCPReqQFullDrop", "SYNs dropped because the SYN queue was full and SYN cookies are off", "node_netstat_TcpExt_TCPReqQFullDrop", false, false},
		{"Ip6.InReceives", "total packets received", "node_netstat_Ip6_InReceives", true, false},
		{"MPTcpExt.AddAddr", "", "node_netstat_MPTcpExt_AddAddr", false, false},
	}
	for _, tt := range tests {
		c := Describe(tt.name)
		if c.Name != tt.name || c.Meaning != tt.meaning || c.NodeExporter != tt.node || c.NetTools != tt.netTools || c.NodeExporterDefault != tt.def {
			t.Errorf("Describe(%s) = %+v", tt.name, c)
		}
	}
	if !Describe("Tcp.CurrEstab").Gauge || Describe("Tcp.ActiveOpens").Gauge {
		t.Error("CurrEstab must be a gauge, ActiveOpens not")
	}
	for _, n := range DefaultSet {
		if Describe(n).Meaning == "" {
			t.Errorf("default counter %s has no meaning", n)
		}
	}
}

func TestLookup(t *testing.T) {
	s := Snapshot{"TcpExt.ListenOverflows": 1, "Ip.InReceives": 2, "Ip6.InReceives": 3, "Tcp.ActiveOpens": 4}
	for in, want := range map[string]string{
		"TcpExt.ListenOverflows":              "TcpExt.ListenOverflows",
		"tcpext.listenoverflows":              "TcpExt.ListenOverflows",
		"TcpExtListenOverflows":               "TcpExt.ListenOverflows",
		"node_netstat_TcpExt_ListenOverflows": "TcpExt.ListenOverflows",
		"TcpExt_ListenOverflows":              "TcpExt.ListenOverflows",
		"ListenOverflows":                     "TcpExt.ListenOverflows",
		"Ip6InReceives":                       "Ip6.InReceives",
		"ActiveOpens":                         "Tcp.ActiveOpens",
		"TCPPrequeued":                        "TcpExt.TCPPrequeued", // known, absent
		"IcmpMsg.InType3":                     "IcmpMsg.InType3",
	} {
		got, err := Lookup(s, in)
		if err != nil || got != want {
			t.Errorf("Lookup(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for in, e := range map[string]string{
		"InReceives":     `counter "InReceives" is ambiguous: Ip.InReceives, Ip6.InReceives`,
		"NoSuchCounter":  `unknown counter "NoSuchCounter"`,
		"TcpExt.Nope":    `unknown counter "TcpExt.Nope"`,
		"IcmpMsg.InType": `unknown counter`,
	} {
		if _, err := Lookup(s, in); err == nil || !strings.Contains(err.Error(), e) {
			t.Errorf("Lookup(%q) = %v, want %q", in, err, e)
		}
	}
}

func TestDeltaGet(t *testing.T) {
	a := Snapshot{"Tcp.InSegs": 10, "Tcp.MaxConn": -1, "Only.A": 1}
	b := Snapshot{"Tcp.InSegs": 15, "Tcp.MaxConn": -1, "Only.B": 1}
	d := Delta(a, b)
	if len(d) != 2 || d["Tcp.InSegs"] != 5 || d["Tcp.MaxConn"] != 0 {
		t.Errorf("Delta = %v", d)
	}
	if v, ok := b.Get("Icmp6.OutType135"); !ok || v != 0 {
		t.Errorf("absent ICMP type counter = %d, %v; want 0, true", v, ok)
	}
	if _, ok := b.Get("Icmp6.OutType256"); ok {
		t.Error("ICMP type 256 reported present")
	}
	if _, ok := b.Get("TcpExt.TCPPrequeued"); ok {
		t.Error("absent counter reported present")
	}
}

func TestReadMissing(t *testing.T) {
	dir := t.TempDir()
	if _, err := Read(dir); err == nil || !strings.Contains(err.Error(), "netstat") {
		t.Errorf("Read(empty dir) = %v, want an error naming netstat", err)
	}
	for _, f := range []string{"netstat", "snmp"} {
		b, err := readCapture("testdata/6.18", f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Read(dir) // no snmp6: IPv6 disabled
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s["Ip6.InReceives"]; ok {
		t.Error("Ip6 counters without snmp6")
	}
}
