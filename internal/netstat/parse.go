package netstat

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// We parse the files ourselves instead of using prometheus/procfs: its
// ProcNetstat/ProcSnmp/ProcSnmp6 map a fixed list of names onto struct
// fields and silently drop the rest. On 6.18 that loses 41 of the 136
// TcpExt counters (TCPBacklogDrop, TCPMigrateReqFailure, TCPZeroWindowDrop,
// ...) and all of MPTcpExt; it also stores values as float64, which rounds
// 64-bit byte counters. The formats are simple enough to parse generically:
//
//	net/netstat, net/snmp (net/ipv4/proc.c): pairs of lines
//	    Prefix: Name1 Name2 ...
//	    Prefix: value1 value2 ...
//	net/snmp6 (net/ipv6/proc.c): one "Ip6InReceives <spaces> 123" a line.

// Errors of the parsers; the error text says which line and counter.
var (
	ErrSyntax = errors.New("malformed counters file")
	ErrRange  = errors.New("counter value out of range")
)

// maxLine bounds one line; the kernel's longest (TcpExt names) is ~2.5 KB.
const maxLine = 1 << 20

// ParseTable parses the "Prefix: names" / "Prefix: values" format of
// net/netstat and net/snmp into s, keyed "Prefix.Name". A prefix may repeat
// (IcmpMsg is printed 16 types a pair) but a name may not.
//
// Values are signed: Tcp MaxConn is -1 ("no limit", RFC 2012). Values
// beyond int64 are an error rather than being wrapped or clamped.
func ParseTable(data []byte, s Snapshot) error {
	lines := splitLines(data)
	for i := 0; i < len(lines); i++ {
		hdr := lines[i]
		if len(bytes.TrimSpace(hdr.text)) == 0 {
			continue // net-tools notes an empty first line on some 2.6 kernels
		}
		hp, names, err := splitPrefix(hdr)
		if err != nil {
			return err
		}
		i++
		if i >= len(lines) || len(bytes.TrimSpace(lines[i].text)) == 0 {
			return fmt.Errorf("%w: line %d: %q header has no value line", ErrSyntax, hdr.no, hp)
		}
		val := lines[i]
		vp, values, err := splitPrefix(val)
		if err != nil {
			return err
		}
		if vp != hp {
			return fmt.Errorf("%w: line %d: value line for %q starts with %q", ErrSyntax, val.no, hp, vp)
		}
		if len(names) != len(values) {
			return fmt.Errorf("%w: line %d: %s has %d names but %d values", ErrSyntax, val.no, hp, len(names), len(values))
		}
		for j, name := range names {
			if err := checkName(name); err != nil {
				return fmt.Errorf("%w: line %d: %s: %v", ErrSyntax, hdr.no, hp, err)
			}
			key := hp + "." + name
			if _, dup := s[key]; dup {
				return fmt.Errorf("%w: line %d: %s appears twice", ErrSyntax, hdr.no, key)
			}
			v, err := parseValue(key, values[j])
			if err != nil {
				return fmt.Errorf("line %d: %w", val.no, err)
			}
			s[key] = v
		}
	}
	return nil
}

// ParseSNMP6 parses net/snmp6 into s. The protocol is the name up to and
// including its first "6" (Ip6, Icmp6, Udp6, UdpLite6), which is how
// net-tools (cpytitle) and node_exporter split it: "Icmp6InType133" becomes
// "Icmp6.InType133".
func ParseSNMP6(data []byte, s Snapshot) error {
	for _, l := range splitLines(data) {
		f := strings.Fields(string(l.text))
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 {
			return fmt.Errorf("%w: line %d: want \"Name value\", got %d fields", ErrSyntax, l.no, len(f))
		}
		six := strings.IndexByte(f[0], '6')
		if six <= 0 || six == len(f[0])-1 {
			return fmt.Errorf("%w: line %d: %q is not ProtoNNName (like Ip6InReceives)", ErrSyntax, l.no, f[0])
		}
		proto, name := f[0][:six+1], f[0][six+1:]
		if err := checkName(proto); err != nil {
			return fmt.Errorf("%w: line %d: %v", ErrSyntax, l.no, err)
		}
		if err := checkName(name); err != nil {
			return fmt.Errorf("%w: line %d: %v", ErrSyntax, l.no, err)
		}
		key := proto + "." + name
		if _, dup := s[key]; dup {
			return fmt.Errorf("%w: line %d: %s appears twice", ErrSyntax, l.no, key)
		}
		v, err := parseValue(key, f[1])
		if err != nil {
			return fmt.Errorf("line %d: %w", l.no, err)
		}
		s[key] = v
	}
	return nil
}

type line struct {
	no   int
	text []byte
}

func splitLines(data []byte) []line {
	var out []line
	for i, t := range bytes.Split(data, []byte("\n")) {
		out = append(out, line{no: i + 1, text: t})
	}
	// A final "\n" leaves one empty element; it is skipped like any blank.
	return out
}

// splitPrefix splits "Prefix: a b c" into "Prefix" and its fields.
func splitPrefix(l line) (string, []string, error) {
	if len(l.text) > maxLine {
		return "", nil, fmt.Errorf("%w: line %d: longer than %d bytes", ErrSyntax, l.no, maxLine)
	}
	f := strings.Fields(string(l.text))
	if len(f) == 0 || !strings.HasSuffix(f[0], ":") || len(f[0]) == 1 {
		return "", nil, fmt.Errorf("%w: line %d: does not start with \"Prefix:\": %.40q", ErrSyntax, l.no, l.text)
	}
	p := strings.TrimSuffix(f[0], ":")
	if err := checkName(p); err != nil {
		return "", nil, fmt.Errorf("%w: line %d: %v", ErrSyntax, l.no, err)
	}
	return p, f[1:], nil
}

// checkName accepts the characters the kernel uses in MIB names, so that a
// key is safe to print and to turn into a Prometheus metric name.
func checkName(n string) error {
	if n == "" {
		return errors.New("empty name")
	}
	for _, c := range n {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
		if !ok {
			return fmt.Errorf("bad character %q in name %.40q", c, n)
		}
	}
	return nil
}

func parseValue(key, v string) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err == nil {
		return n, nil
	}
	if errors.Is(err, strconv.ErrRange) {
		return 0, fmt.Errorf("%w: %s = %.40s", ErrRange, key, v)
	}
	return 0, fmt.Errorf("%w: %s = %.40q is not an integer", ErrSyntax, key, v)
}
