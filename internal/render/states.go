package render

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/synq-trace/synq/internal/netns"
	"github.com/synq-trace/synq/internal/sockstate"
)

// StatesReport is one namespace's counts, as JSON.
type StatesReport struct {
	Netns     uint64         `json:"netns"`
	NetnsName string         `json:"netns_name,omitempty"`
	TimeNs    int64          `json:"time_ns"`
	Total     int            `json:"total"`
	IPv4      int            `json:"ipv4"`
	IPv6      int            `json:"ipv6"`
	States    map[string]int `json:"states"`
	Ports     []StatesPort   `json:"ports,omitempty"`
	Hints     []StatesHint   `json:"hints"`
}

// StatesPort is a count of sockets in one state on one local port.
type StatesPort struct {
	Port  uint16 `json:"port"`
	State string `json:"state"`
	Count int    `json:"count"`
}

// StatesHint is a count past its threshold, with what it suggests.
type StatesHint struct {
	State        string `json:"state"`
	Count        int    `json:"count"`
	Threshold    int    `json:"threshold"`
	TopPort      uint16 `json:"top_port,omitempty"`
	TopPortCount int    `json:"top_port_count,omitempty"`
	Message      string `json:"message"`
}

// NewStatesReport reports one namespace's counts, by port too when ports.
func NewStatesReport(ns netns.NS, at time.Time, c *sockstate.Counts, ports bool) StatesReport {
	r := StatesReport{
		Netns: ns.Inode, NetnsName: ns.Name, TimeNs: at.UnixNano(),
		Total: c.Total, IPv4: c.IPv4, IPv6: c.IPv6,
		States: map[string]int{}, Hints: []StatesHint{},
	}
	for _, s := range sockstate.States {
		r.States[s.String()] = c.State(s)
	}
	if n := c.States[0]; n > 0 {
		r.States["UNKNOWN"] = n
	}
	if ports {
		for _, p := range c.ByPort() {
			r.Ports = append(r.Ports, StatesPort{p.Port, p.State.String(), p.Count})
		}
	}
	for _, h := range c.Hints(sockstate.DefaultThresholds) {
		r.Hints = append(r.Hints, StatesHint{h.State, h.Count, h.Threshold, h.TopPort, h.TopPortCount, h.Message})
	}
	return r
}

// WriteStates prints a report as one JSON line or text broken down by (by)
// state or port; sep puts a blank line before it.
func WriteStates(w io.Writer, f Format, r StatesReport, by string, sep bool) error {
	if f == JSON {
		return writeJSONLine(w, r)
	}
	var b strings.Builder
	if sep {
		b.WriteString("\n")
	}
	ns := netnsHead(r.Netns, r.NetnsName)
	plural := "s"
	if r.Total == 1 {
		plural = ""
	}
	fmt.Fprintf(&b, "netns %s: %d TCP socket%s (IPv4 %d, IPv6 %d)\n", ns, r.Total, plural, r.IPv4, r.IPv6)
	if r.Total > 0 {
		if by == "port" {
			rows := [][]string{{"PORT", "STATE", "COUNT"}}
			for _, p := range r.Ports {
				rows = append(rows, []string{strconv.Itoa(int(p.Port)), p.State, strconv.Itoa(p.Count)})
			}
			writeTable(&b, rows, []bool{true, false, true})
		} else {
			rows := [][]string{{"STATE", "COUNT"}}
			for _, s := range sockstate.States {
				if n := r.States[s.String()]; n > 0 {
					rows = append(rows, []string{s.String(), strconv.Itoa(n)})
				}
			}
			if n := r.States["UNKNOWN"]; n > 0 {
				rows = append(rows, []string{"UNKNOWN", strconv.Itoa(n)})
			}
			writeTable(&b, rows, []bool{false, true})
		}
	}
	for _, h := range r.Hints {
		fmt.Fprintf(&b, "hint: %d %s (from %d): %s", h.Count, h.State, h.Threshold, h.Message)
		if h.TopPortCount > 0 {
			fmt.Fprintf(&b, "; most on local port %d (%d)", h.TopPort, h.TopPortCount)
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
