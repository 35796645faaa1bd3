package render

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/synq-trace/synq/tracer"
)

// SummaryLine is the last line of a stream: events by kind and every
// record lost.
func SummaryLine(byKind map[tracer.Kind]uint64, st tracer.Stats) string {
	var total uint64
	var parts []string
	for _, k := range tracer.AllKinds {
		if n := byKind[k]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", k, n))
			total += n
		}
	}
	s := fmt.Sprintf("synq: %d events", total)
	if len(parts) > 0 {
		s += " (" + strings.Join(parts, " ") + ")"
	}
	s += fmt.Sprintf(", lost %d", st.Lost+st.RecursionMisses+st.BadRecords)
	if st.Lost+st.RecursionMisses+st.BadRecords > 0 {
		s += fmt.Sprintf(" (ring buffer full %d, recursion misses %d, undecodable %d)", st.Lost, st.RecursionMisses, st.BadRecords)
	}
	return s
}

// ReportTier says which tier was picked, and with verbose every hook and
// why better tiers were skipped.
func ReportTier(w io.Writer, info tracer.Info, verbose bool) {
	kinds := make([]string, 0, 8)
	for _, k := range info.Kinds() {
		kinds = append(kinds, k.String())
	}
	fmt.Fprintf(w, "synq: %s tier on Linux %s; events: %s\n", info.Tier, info.Kernel, strings.Join(kinds, ", "))
	var skipped []string
	for _, t := range tracer.Tiers {
		if err, ok := info.Skipped[t]; ok {
			skipped = append(skipped, fmt.Sprintf("%s: %v", t, err))
		}
	}
	sort.Strings(skipped)
	for _, s := range skipped {
		fmt.Fprintf(w, "synq: skipped tier %s\n", s)
	}
	for _, h := range info.Hooks {
		if h.Err != nil {
			fmt.Fprintf(w, "synq: hook %s (%s) not attached: %v\n", h.Program, h.Target, h.Err)
		} else if verbose {
			fmt.Fprintf(w, "synq: hook %s (%s) attached\n", h.Program, h.Target)
		}
	}
	if verbose {
		for _, n := range info.Notes {
			fmt.Fprintf(w, "synq: note: %s\n", n)
		}
	}
}
