package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/synq-trace/synq/internal/netns"
	"github.com/synq-trace/synq/internal/render"
	"github.com/synq-trace/synq/internal/sockstate"
)

func statesCommand() *cli.Command {
	return &cli.Command{
		Name:  "states",
		Usage: "count TCP sockets by state (and local port) per netns, with hints",
		Description: fmt.Sprintf("Counts IPv4 and IPv6 TCP sockets with sock_diag, like ss -tan. Request sockets\n"+
			"(SYN received, final ACK awaited) are shown as NEW_SYN_RECV; ss calls them SYN-RECV.\n"+
			"Hints appear from %d TIME_WAIT, %d SYN_RECV+NEW_SYN_RECV or %d CLOSE_WAIT sockets.",
			sockstate.DefaultThresholds.TimeWait, sockstate.DefaultThresholds.SynRecv, sockstate.DefaultThresholds.CloseWait),
		Flags: []cli.Flag{
			flagOutput,
			flagNetns,
			&cli.BoolFlag{Name: "all-netns", Usage: "every network namespace (named or with a process in it)"},
			&cli.StringFlag{Name: "by", Value: "state", Usage: "break down by `state` or by local port and state (port)"},
		},
		Action: runStates,
	}
}

// statesReport is one namespace's counts, as JSON.
type statesReport struct {
	Netns     uint64         `json:"netns"`
	NetnsName string         `json:"netns_name,omitempty"`
	TimeNs    int64          `json:"time_ns"`
	Total     int            `json:"total"`
	IPv4      int            `json:"ipv4"`
	IPv6      int            `json:"ipv6"`
	States    map[string]int `json:"states"`
	Ports     []statesPort   `json:"ports,omitempty"`
	Hints     []statesHint   `json:"hints"`
}

type statesPort struct {
	Port  uint16 `json:"port"`
	State string `json:"state"`
	Count int    `json:"count"`
}

type statesHint struct {
	State        string `json:"state"`
	Count        int    `json:"count"`
	Threshold    int    `json:"threshold"`
	TopPort      uint16 `json:"top_port,omitempty"`
	TopPortCount int    `json:"top_port_count,omitempty"`
	Message      string `json:"message"`
}

func runStates(c *cli.Context) error {
	format, err := outputFormat(c)
	if err != nil {
		return err
	}
	by := c.String("by")
	switch {
	case by != "state" && by != "port":
		return usagef("unknown --by %q (want state or port)", by)
	case c.NArg() > 0:
		return usagef("states takes no arguments")
	case c.Bool("all-netns") && c.IsSet("netns"):
		return usagef("--netns and --all-netns exclude each other")
	}
	var all []netns.NS
	switch ns, ok, err := netnsFilter(c); {
	case err != nil:
		return err
	case ok:
		all = []netns.NS{ns}
	case c.Bool("all-netns"):
		if all, err = netns.All(); err != nil {
			return err
		}
	default:
		cur, err := netns.Current()
		if err != nil {
			return err
		}
		all = []netns.NS{cur}
	}

	var failed []error
	for i, ns := range all {
		counts, err := sockstate.Count(ns)
		if err != nil {
			if len(all) == 1 {
				return err
			}
			// A namespace can vanish between listing and counting.
			fmt.Fprintf(c.App.ErrWriter, "synq: %v\n", err)
			failed = append(failed, err)
			continue
		}
		r := newStatesReport(ns, time.Now(), counts, by == "port")
		if err := writeStates(c.App.Writer, format, r, by, i > 0); err != nil {
			return err
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d network namespaces could not be counted: %w", len(failed), len(all), errors.Join(failed...))
	}
	return nil
}

func newStatesReport(ns netns.NS, at time.Time, c *sockstate.Counts, ports bool) statesReport {
	r := statesReport{
		Netns: ns.Inode, NetnsName: ns.Name, TimeNs: at.UnixNano(),
		Total: c.Total, IPv4: c.IPv4, IPv6: c.IPv6,
		States: map[string]int{}, Hints: []statesHint{},
	}
	for _, s := range sockstate.States {
		r.States[s.String()] = c.State(s)
	}
	if n := c.States[0]; n > 0 {
		r.States["UNKNOWN"] = n
	}
	if ports {
		for _, p := range c.ByPort() {
			r.Ports = append(r.Ports, statesPort{p.Port, p.State.String(), p.Count})
		}
	}
	for _, h := range c.Hints(sockstate.DefaultThresholds) {
		r.Hints = append(r.Hints, statesHint{h.State, h.Count, h.Threshold, h.TopPort, h.TopPortCount, h.Message})
	}
	return r
}

func writeStates(w io.Writer, f render.Format, r statesReport, by string, sep bool) error {
	if f == render.JSON {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	var b strings.Builder
	if sep {
		b.WriteString("\n")
	}
	ns := fmt.Sprintf("net:[%d]", r.Netns)
	if r.NetnsName != "" {
		ns = r.NetnsName + " (" + ns + ")"
	}
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
