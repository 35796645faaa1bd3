package command

import (
	"errors"
	"net/netip"
	"strings"
)

// CheckListenHost refuses a listen address's host that is neither an IP
// address nor a DNS name, before net.Listen would look it up: "999.1.1.1"
// (digits and dots: meant as an IPv4 address, and not one) went to DNS and
// failed as a runtime error. Empty means every address.
func CheckListenHost(host string) error {
	if host == "" {
		return nil
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if strings.Trim(host, "0123456789.") == "" || strings.Contains(host, ":") {
		return errors.New("not an IP address")
	}
	if len(host) > 253 {
		return errors.New("host name longer than 253 characters")
	}
	for _, label := range strings.Split(strings.TrimSuffix(host, "."), ".") {
		if !dnsLabel(label) {
			return errors.New("not an IP address or host name")
		}
	}
	return nil
}

// dnsLabel: 1-63 letters, digits and hyphens, not starting or ending with
// a hyphen (RFC 1123).
func dnsLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for _, c := range []byte(l) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
