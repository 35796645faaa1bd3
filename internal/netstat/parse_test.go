package netstat

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"testing"
)

func TestParseTable(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Snapshot
		err  string // substring of the error; "" = no error
	}{
		{
			name: "tcp with MaxConn -1",
			in:   "Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens\nTcp: 1 200 120000 -1 26\n",
			want: Snapshot{"Tcp.RtoAlgorithm": 1, "Tcp.RtoMin": 200, "Tcp.RtoMax": 120000, "Tcp.MaxConn": -1, "Tcp.ActiveOpens": 26},
		},
		{
			name: "IcmpMsg repeated prefix, blank lines, no final newline",
			in:   "\nIcmpMsg: InType3 OutType3\nIcmpMsg: 5 6\n\nIcmpMsg: InType8\nIcmpMsg: 7",
			want: Snapshot{"IcmpMsg.InType3": 5, "IcmpMsg.OutType3": 6, "IcmpMsg.InType8": 7},
		},
		{
			name: "int64 max, tabs and CRLF",
			in:   "IpExt:\tInOctets OutOctets\r\nIpExt:\t9223372036854775807 0\r\n",
			want: Snapshot{"IpExt.InOctets": math.MaxInt64, "IpExt.OutOctets": 0},
		},
		{name: "empty", in: "", want: Snapshot{}},
		{name: "header only", in: "TcpExt: A B\n", err: `line 1: "TcpExt" header has no value line`},
		{name: "truncated value line", in: "TcpExt: A B\nTcpExt: 1\n", err: "line 2: TcpExt has 2 names but 1 values"},
		{name: "extra values", in: "Tcp: A\nTcp: 1 2\n", err: "1 names but 2 values"},
		{name: "prefix mismatch", in: "Tcp: A\nUdp: 1\n", err: `value line for "Tcp" starts with "Udp"`},
		{name: "no prefix", in: "A B\n1 2\n", err: `line 1: does not start with "Prefix:"`},
		{name: "bare colon", in: ": A\n: 1\n", err: `does not start with "Prefix:"`},
		{name: "non-numeric", in: "Tcp: A\nTcp: x1\n", err: `Tcp.A = "x1" is not an integer`},
		{name: "float", in: "Tcp: A\nTcp: 1.5\n", err: "is not an integer"},
		{name: "beyond uint64", in: "Tcp: A\nTcp: 99999999999999999999999\n", err: "counter value out of range: Tcp.A = 99999999999999999999999"},
		{name: "beyond int64", in: "Tcp: A\nTcp: 9223372036854775808\n", err: "out of range"},
		{name: "below int64", in: "Tcp: A\nTcp: -9223372036854775809\n", err: "out of range"},
		{name: "duplicate name", in: "Tcp: A A\nTcp: 1 2\n", err: "Tcp.A appears twice"},
		{name: "duplicate across lines", in: "Tcp: A\nTcp: 1\nTcp: A\nTcp: 2\n", err: "line 3: Tcp.A appears twice"},
		{name: "bad name", in: "Tcp: A.B\nTcp: 1\n", err: `bad character '.' in name "A.B"`},
		{name: "bad prefix", in: "T-cp: A\nT-cp: 1\n", err: `bad character '-'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Snapshot{}
			err := ParseTable([]byte(tt.in), s)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.err)
				}
				if !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrRange) {
					t.Errorf("err %v is neither ErrSyntax nor ErrRange", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(s) != fmt.Sprint(tt.want) {
				t.Errorf("got %v\nwant %v", s, tt.want)
			}
		})
	}
}

func TestParseSNMP6(t *testing.T) {
	s := Snapshot{}
	in := "Ip6InReceives                   \t1\nIcmp6InType133 4\nUdpLite6InErrors 0\n\n"
	if err := ParseSNMP6([]byte(in), s); err != nil {
		t.Fatal(err)
	}
	want := Snapshot{"Ip6.InReceives": 1, "Icmp6.InType133": 4, "UdpLite6.InErrors": 0}
	if fmt.Sprint(s) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", s, want)
	}
	for in, e := range map[string]string{
		"Ip6InReceives\n":             `want "Name value", got 1 fields`,
		"Ip6InReceives 1 2\n":         "got 3 fields",
		"IpInReceives 1\n":            "is not ProtoNNName",
		"6InReceives 1\n":             "is not ProtoNNName",
		"Ip6 1\n":                     "is not ProtoNNName",
		"Ip6In-Receives 1\n":          "bad character '-'",
		"Ip6A 1\nIp6A 2\n":            "line 2: Ip6.A appears twice",
		"Ip6A 18446744073709551616\n": "out of range",
		"Ip6A -\n":                    "is not an integer",
	} {
		err := ParseSNMP6([]byte(in), Snapshot{})
		if err == nil || !strings.Contains(err.Error(), e) {
			t.Errorf("ParseSNMP6(%q) = %v, want error containing %q", in, err, e)
		}
	}
}

// format writes s back in the two files' formats, for round trips.
func format(s Snapshot) (table, snmp6 []byte) {
	byPrefix := map[string][]string{}
	var prefixes []string
	for _, k := range s.Names() {
		p, _, _ := strings.Cut(k, ".")
		if strings.HasSuffix(p, "6") {
			snmp6 = fmt.Appendf(snmp6, "%s%s\t%d\n", p, strings.TrimPrefix(k, p+"."), s[k])
			continue
		}
		if byPrefix[p] == nil {
			prefixes = append(prefixes, p)
		}
		byPrefix[p] = append(byPrefix[p], k)
	}
	sort.Strings(prefixes)
	for _, p := range prefixes {
		table = fmt.Appendf(table, "%s:", p)
		for _, k := range byPrefix[p] {
			table = fmt.Appendf(table, " %s", strings.TrimPrefix(k, p+"."))
		}
		table = fmt.Appendf(table, "\n%s:", p)
		for _, k := range byPrefix[p] {
			table = fmt.Appendf(table, " %d", s[k])
		}
		table = append(table, '\n')
	}
	return table, snmp6
}

// FuzzParse feeds both parsers arbitrary text: they must not panic, must
// fail with ErrSyntax or ErrRange, and what they accept must survive a
// round trip.
func FuzzParse(f *testing.F) {
	for _, dir := range captureDirs(f) {
		for _, name := range Files {
			if b, err := readCapture(dir, name); err == nil {
				f.Add(b)
			}
		}
	}
	f.Add([]byte("Tcp: MaxConn\nTcp: -1\n"))
	f.Add([]byte("TcpExt: A B\nTcpExt: 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for i, parse := range []func([]byte, Snapshot) error{ParseTable, ParseSNMP6} {
			s := Snapshot{}
			err := parse(data, s)
			if err != nil {
				if !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrRange) {
					t.Fatalf("parser %d: error %v is neither ErrSyntax nor ErrRange", i, err)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Fatalf("parser %d: error is not one line: %q", i, err)
				}
				continue
			}
			for k := range s {
				p, n, ok := strings.Cut(k, ".")
				if !ok || checkName(p) != nil || checkName(n) != nil {
					t.Fatalf("parser %d: bad key %q", i, k)
				}
			}
			if i == 1 {
				// snmp6 keys split at the first "6"; a name like
				// "Ip6A6B" round-trips, so check it.
				_, b6 := format(s)
				back := Snapshot{}
				if err := ParseSNMP6(b6, back); err != nil || fmt.Sprint(back) != fmt.Sprint(s) {
					t.Fatalf("snmp6 round trip: %v\n%v\n%v", err, s, back)
				}
				continue
			}
			tb, _ := format(s)
			back := Snapshot{}
			// Prefixes ending in 6 would go to the snmp6 text; put them back.
			for k, v := range s {
				if p, _, _ := strings.Cut(k, "."); strings.HasSuffix(p, "6") {
					back[k] = v
				}
			}
			if err := ParseTable(tb, back); err != nil || fmt.Sprint(back) != fmt.Sprint(s) {
				t.Fatalf("table round trip: %v\n%v\n%v", err, s, back)
			}
		}
	})
}
