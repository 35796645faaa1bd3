package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/synq-trace/synq/internal/netns"
	"github.com/synq-trace/synq/internal/netstat"
	"github.com/synq-trace/synq/internal/render"
)

func statsCommand() *cli.Command {
	return &cli.Command{
		Name:      "stats",
		Usage:     "the kernel's TCP/IP counters (netstat -s, nstat) with node_exporter names and meanings",
		ArgsUsage: "[COUNTER...]",
		Description: "Without COUNTER, shows synq's default set (listen queue overflows, SYN cookies,\n" +
			"retransmits, ...). A COUNTER is TcpExt.ListenOverflows, TcpExtListenOverflows,\n" +
			"node_netstat_TcpExt_ListenOverflows or just ListenOverflows. Counters this kernel\n" +
			"does not have are shown as \"not on this kernel\", never as 0.\n" +
			"With --interval, prints per-second rates every interval until Ctrl-C or --count.",
		Flags: []cli.Flag{
			flagOutput,
			flagNetns,
			&cli.BoolFlag{Name: "all", Usage: "every counter of this kernel, plus known ones it lacks"},
			&cli.DurationFlag{Name: "interval", Usage: "print rates every `DURATION` (e.g. 1s; at least 100ms)"},
			&cli.IntFlag{Name: "count", Usage: "with --interval, stop after `N` reports"},
		},
		Action: runStats,
	}
}

// statsCounter is one counter in a report, as JSON.
type statsCounter struct {
	Name    string `json:"name"`
	Present bool   `json:"present"`
	// Value is null when the kernel does not have the counter.
	Value *int64 `json:"value"`
	// Delta and RatePerSec come with --interval, for counters (not gauges).
	Delta               *int64   `json:"delta,omitempty"`
	RatePerSec          *float64 `json:"rate_per_sec,omitempty"`
	Gauge               bool     `json:"gauge,omitempty"`
	NodeExporter        string   `json:"node_exporter"`
	NodeExporterDefault bool     `json:"node_exporter_default"`
	Meaning             string   `json:"meaning,omitempty"`
	// MeaningSource is "net-tools" for the sentence netstat -s prints,
	// "synq" for synq's own wording.
	MeaningSource string `json:"meaning_source,omitempty"`
}

// statsReport is one snapshot (or one interval) of counters, as JSON.
type statsReport struct {
	Netns      uint64         `json:"netns"`
	NetnsName  string         `json:"netns_name,omitempty"`
	TimeNs     int64          `json:"time_ns"`
	IntervalNs int64          `json:"interval_ns,omitempty"`
	Counters   []statsCounter `json:"counters"`
}

func runStats(c *cli.Context) error {
	format, err := outputFormat(c)
	if err != nil {
		return err
	}
	interval := c.Duration("interval")
	if c.IsSet("interval") && interval < minInterval {
		return usagef("invalid --interval %s: want at least %s, e.g. 1s", interval, minInterval)
	}
	count := c.Int("count")
	switch {
	case count < 0:
		return usagef("invalid --count %d: want 1 or more", count)
	case c.IsSet("count") && !c.IsSet("interval"):
		return usagef("--count needs --interval")
	case c.Bool("all") && c.NArg() > 0:
		return usagef("--all takes no counter names")
	}
	ns, ok, err := netnsFilter(c)
	if err != nil {
		return err
	}
	if !ok {
		if ns, err = netns.Current(); err != nil {
			return err
		}
	}

	prev, err := netstat.ReadNetns(ns)
	if err != nil {
		return err
	}
	prevAt := time.Now()
	names, err := statsNames(c, prev)
	if err != nil {
		return err
	}
	out := c.App.Writer
	if interval == 0 {
		return writeStats(out, format, newStatsReport(ns, prevAt, 0, names, prev, nil))
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for n := 0; count == 0 || n < count; n++ {
		select {
		case <-c.Context.Done():
			return nil
		case <-t.C:
		}
		cur, err := netstat.ReadNetns(ns)
		if err != nil {
			return err
		}
		now := time.Now()
		r := newStatsReport(ns, now, now.Sub(prevAt), names, cur, prev)
		if err := writeStats(out, format, r); err != nil {
			return err
		}
		prev, prevAt = cur, now
	}
	return nil
}

// statsNames picks the counters to show: the arguments, --all, or the
// default set.
func statsNames(c *cli.Context, s netstat.Snapshot) ([]string, error) {
	switch {
	case c.NArg() > 0:
		var names []string
		for _, a := range c.Args().Slice() {
			n, err := netstat.Lookup(s, a)
			if err != nil {
				return nil, usageErr(err)
			}
			names = append(names, n)
		}
		return names, nil
	case c.Bool("all"):
		names := s.Names()
		for _, k := range netstat.Known() {
			if _, ok := s[k]; !ok {
				names = append(names, k)
			}
		}
		netstat.SortNames(names)
		return names, nil
	}
	return netstat.DefaultSet, nil
}

func newStatsReport(ns netns.NS, at time.Time, elapsed time.Duration, names []string, s, prev netstat.Snapshot) statsReport {
	r := statsReport{Netns: ns.Inode, NetnsName: ns.Name, TimeNs: at.UnixNano(), IntervalNs: elapsed.Nanoseconds()}
	for _, n := range names {
		d := netstat.Describe(n)
		sc := statsCounter{
			Name:                n,
			Gauge:               d.Gauge,
			NodeExporter:        d.NodeExporter,
			NodeExporterDefault: d.NodeExporterDefault,
			Meaning:             d.Meaning,
		}
		if d.Meaning != "" {
			sc.MeaningSource = "synq"
			if d.NetTools {
				sc.MeaningSource = "net-tools"
			}
		}
		if v, ok := s.Get(n); ok {
			sc.Present, sc.Value = true, &v
			if pv, ok := prev.Get(n); ok && !d.Gauge && elapsed > 0 {
				dv := v - pv
				rate := float64(dv) / elapsed.Seconds()
				sc.Delta, sc.RatePerSec = &dv, &rate
			}
		}
		r.Counters = append(r.Counters, sc)
	}
	return r
}

func writeStats(w io.Writer, f render.Format, r statsReport) error {
	if f == render.JSON {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	rates := r.IntervalNs > 0
	ns := fmt.Sprintf("net:[%d]", r.Netns)
	if r.NetnsName != "" {
		ns = r.NetnsName + " (" + ns + ")"
	}
	head := fmt.Sprintf("# %s netns %s", time.Unix(0, r.TimeNs).Format(time.RFC3339), ns)
	if rates {
		head += fmt.Sprintf(", rates over %s", time.Duration(r.IntervalNs).Round(time.Millisecond))
	}
	cols := []string{"COUNTER", "VALUE"}
	right := []bool{false, true}
	if rates {
		cols = append(cols, "DELTA", "RATE/S")
		right = append(right, true, true)
	}
	cols = append(cols, "NODE_EXPORTER", "MEANING (netstat -s)")
	right = append(right, false, false)
	rows := [][]string{cols}
	var notDefault, synqWords bool
	for _, sc := range r.Counters {
		row := []string{sc.Name}
		if sc.Present {
			row = append(row, strconv.FormatInt(*sc.Value, 10))
		} else {
			row = append(row, "not on this kernel")
		}
		if rates {
			switch {
			case sc.Delta != nil:
				row = append(row, strconv.FormatInt(*sc.Delta, 10), strconv.FormatFloat(*sc.RatePerSec, 'f', 1, 64))
			case sc.Gauge && sc.Present:
				row = append(row, "gauge", "-")
			default:
				row = append(row, "-", "-")
			}
		}
		node := sc.NodeExporter
		if !sc.NodeExporterDefault {
			node += " *"
			notDefault = true
		}
		meaning := sc.Meaning
		switch {
		case meaning == "":
			meaning = "-"
		case sc.MeaningSource == "synq":
			meaning = "[synq] " + meaning
			synqWords = true
		}
		rows = append(rows, append(row, node, meaning))
	}
	var b strings.Builder
	b.WriteString(head + "\n")
	writeTable(&b, rows, right)
	if notDefault {
		b.WriteString("* not in node_exporter's default --collector.netstat.fields\n")
	}
	if synqWords {
		b.WriteString("[synq] netstat -s has no sentence for this counter; the wording is synq's\n")
	}
	if rates {
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeTable pads columns to their widest cell, two spaces apart; a last
// column aligned left is not padded.
func writeTable(b *strings.Builder, rows [][]string, right []bool) {
	width := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, cell := range r {
			width[i] = max(width[i], len(cell))
		}
	}
	for _, r := range rows {
		for i, cell := range r {
			pad := strings.Repeat(" ", width[i]-len(cell))
			if i > 0 {
				b.WriteString("  ")
			}
			switch {
			case right[i]:
				b.WriteString(pad + cell)
			case i == len(r)-1:
				b.WriteString(cell)
			default:
				b.WriteString(cell + pad)
			}
		}
		b.WriteString("\n")
	}
}
