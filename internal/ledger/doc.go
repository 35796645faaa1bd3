// Package ledger is synq's one account of listeners over time, which every
// command reads: top, latency, listeners, trace --reconcile, demo and serve.
//
// From a SYN to a line on the screen and a Prometheus sample:
//
//  1. bpf/ counts each listen-path event (SYN, cookie, drop by reason,
//     enqueue, accept) in per-listener kernel maps keyed by the listener's
//     kernel address, and streams some as ring-buffer records.
//  2. tracer/ loads and attaches the programs, reads the maps (Counts,
//     Histograms), decodes the records (Read), lists listeners with
//     iter/tcp (Snapshotter) and says what the attached hooks can see
//     (Info.Caps): no one above it looks at the tier.
//  3. ledger (this package):
//     - Walker lists the listeners of every network namespace, or of one,
//     once per refresh, with the namespace's /proc/net counters when asked.
//     A namespace it cannot list is kept in the View with why, and said
//     once (Walker.Report).
//     - Tally turns the maps into per-listener deltas (tracer.Counts.Sub: a
//     shrink is an LRU eviction, not a negative count), tells incarnations at
//     a reused kernel address apart by socket inode, keeps each one's
//     sk_drops baseline (0 for a socket created since synq started, or in a
//     namespace first listed since; with PerNetns, as reconcile wants, each
//     namespace's window starts at its own first listing and a closed
//     socket's sk_drops are kept) and the endpoints events name.
//     - Breakdown splits a listener's drops by reason, as far as the hooks
//     see: a reason they cannot see is nil, never 0. Coverage says which
//     kernel counters synq claims to count in full on this kernel.
//  4. internal/aggregate (top, latency), internal/reconcile (kernel counter
//     vs synq, per namespace) and internal/exporter (Prometheus series with
//     bounded cardinality) shape what the ledger holds; cmd/synq prints it.
//
// Which window a consumer shows (an interval for top, since the baseline for
// reconcile, since first seen for serve) is the consumer's; what happened to
// a listener is the ledger's.
package ledger
