package render

import (
	"io"

	"github.com/synq-trace/synq/internal/reconcile"
)

// PrintDemoListeners shows, per listener, what synq counted in the kernel
// and the drops it attributes, by reason as far as this kernel tells (the
// reconcile's per-listener table).
func PrintDemoListeners(w io.Writer, ls []reconcile.ListenerReport) {
	_ = reconcile.WriteListeners(w, ls)
}
