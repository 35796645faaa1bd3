package main

import (
	"strings"
	"testing"
)

// Issue #12 item 8: bad input flag parsing used to let through (an empty
// value taken for the default, a repeated flag keeping its last value, a
// host name sent to DNS, an interval of 1ns) is one line and exit 2, checked
// before touching the kernel (unprivileged too).
func TestBadInputStrictFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"trace", "--netns", ""}, `--netns: invalid value "": empty`},
		{[]string{"listeners", "--netns="}, `--netns: invalid value "": empty`},
		{[]string{"serve", "--netns", ""}, `--netns: invalid value "": empty`},
		{[]string{"trace", "--tier", ""}, `--tier: invalid value "": empty`},
		{[]string{"trace", "--events", ""}, `--events: invalid value "": empty`},
		{[]string{"trace", "--events", " "}, `--events: invalid value " ": empty`},
		{[]string{"trace", "--output", ""}, `--output: invalid value "": empty`},
		{[]string{"trace", "--btf", ""}, `--btf: invalid value "": empty`},
		{[]string{"top", "--sort", ""}, `--sort: invalid value "": empty`},
		{[]string{"trace", "--port", "1", "--port", "2"}, `--port: invalid value "2": given twice`},
		{[]string{"listeners", "--port", "80", "--port=443"}, `--port: invalid value "443": given twice`},
		{[]string{"trace", "--netns", "1", "--netns", "2"}, `--netns: invalid value "2": given twice`},
		{[]string{"trace", "--duration", "1s", "--duration", "2s"}, `--duration: invalid value "2s": given twice`},
		{[]string{"trace", "-o", "json", "--output", "text"}, "two forms of the same flag"},
		{[]string{"serve", "--listen", "999.1.1.1:19700"}, `invalid --web.listen-address "999.1.1.1:19700": not an IP address`},
		{[]string{"serve", "--listen", "1.2.3:9464"}, `invalid --web.listen-address "1.2.3:9464": not an IP address`},
		{[]string{"serve", "--listen", "no_such host:9464"}, "not an IP address or host name"},
		{[]string{"stats", "--interval", "1ns"}, "invalid --interval 1ns: want at least 100ms"},
		{[]string{"stats", "--interval", "99ms"}, "invalid --interval 99ms: want at least 100ms"},
		{[]string{"top", "--interval", "1ns"}, "invalid --interval 1ns: want at least 100ms"},
		// serve's output is /metrics: it has no --output (the README says
		// every other command has).
		{[]string{"serve", "--output", "json"}, "flag provided but not defined: -output"},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			code, stdout, stderr := runCLI(c.args...)
			checkUsageLine(t, code, stderr, c.want)
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
		})
	}
}

// A flag given once still works, aliases included, and so does each
// command's help.
func TestStrictFlagsAccept(t *testing.T) {
	for _, args := range [][]string{
		{"stats", "--interval", "100ms", "--count", "1", "Tcp.CurrEstab"},
		{"stats", "-o", "json", "Tcp.CurrEstab"},
		{"stats", "--output=json", "Tcp.CurrEstab"},
		{"trace", "--help"},
	} {
		if code, _, stderr := runCLI(args...); code != 0 {
			t.Errorf("synq %s: exit %d, stderr %q", strings.Join(args, " "), code, stderr)
		}
	}
	if _, err := checkListen("node1.example.com:9464"); err != nil {
		t.Errorf("a host name: %v", err)
	}
	if _, err := checkListen("[fe80::1%lo]:9464"); err != nil {
		t.Errorf("an IPv6 address with a zone: %v", err)
	}
}
