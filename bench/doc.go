// Package bench holds synq's performance benchmarks (issue #7): the reader's
// decode + per-listener aggregation path here as Go benchmarks, and the
// kernel-side overhead harness in bench/cmd/synqbench. `make -f bench.mk
// bench-full` runs both and writes docs/benchmarks.md.
package bench
