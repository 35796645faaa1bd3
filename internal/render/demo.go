package render

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/synq-trace/synq/internal/reconcile"
)

// PrintDemoListeners shows, per listener, what synq counted in the kernel
// and the drops it attributes.
func PrintDemoListeners(w io.Writer, ls []reconcile.ListenerReport) {
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LISTENER\tENQUEUED\tACCEPTED\tACK-OVERFLOW\tSYNACK-RETRANS\tLISTEN-DROPS\tACCEPT-Q NOW")
	for _, l := range ls {
		name, queue := l.Endpoint.String(), "-"
		if l.ID == 0 {
			name = "(listener unknown)"
		}
		if l.QueueKnown && !l.Closed {
			queue = fmt.Sprintf("%d/%d", l.AcceptQueueLen, l.AcceptQueueMax)
		}
		drops := fmt.Sprint(l.ListenDrops)
		if !l.ListenDropsExact {
			drops = "~" + drops
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%s\n", name, l.Counts.Enqueue, l.Counts.Accept, l.Counts.AckOverflow,
			l.Counts.SynackRetrans, drops, queue)
	}
	tw.Flush()
}
