package render

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/synq-trace/synq/internal/netns"
	"github.com/synq-trace/synq/internal/netstat"
)

// StatsCounter is one counter in a report, as JSON.
type StatsCounter struct {
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

// StatsReport is one snapshot (or one interval) of counters, as JSON.
type StatsReport struct {
	Netns      uint64         `json:"netns"`
	NetnsName  string         `json:"netns_name,omitempty"`
	TimeNs     int64          `json:"time_ns"`
	IntervalNs int64          `json:"interval_ns,omitempty"`
	Counters   []StatsCounter `json:"counters"`
}

// NewStatsReport reports the named counters of s, with deltas and rates over
// elapsed from prev when both are given.
func NewStatsReport(ns netns.NS, at time.Time, elapsed time.Duration, names []string, s, prev netstat.Snapshot) StatsReport {
	r := StatsReport{Netns: ns.Inode, NetnsName: ns.Name, TimeNs: at.UnixNano(), IntervalNs: elapsed.Nanoseconds()}
	for _, n := range names {
		d := netstat.Describe(n)
		sc := StatsCounter{
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

// WriteStats prints a report as one JSON line or a table.
func WriteStats(w io.Writer, f Format, r StatsReport) error {
	if f == JSON {
		return writeJSONLine(w, r)
	}
	rates := r.IntervalNs > 0
	ns := netnsHead(r.Netns, r.NetnsName)
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
