# Benchmarks (issues #7, #19), included from the Makefile. As root:
#   make bench-full    reader + overhead (synq's churn, nginx under ab and wrk,
#                      redis-benchmark) + scale benchmarks, ~25 min; prints a
#                      table and writes docs/benchmarks.md. Run it on an idle
#                      machine (no QEMU VM matrix running).
#   make bench-short   every benchmark once, tiny, ~3 min: checks they still
#                      run (CI). It asserts no number and writes no doc.
#   make bench-deps    the Debian packages of the third-party workloads and
#                      bpftrace (bench-full and bench-short install them).
GO ?= go
BENCH_DIR := $(or $(TMPDIR),/tmp)/synq-bench
BENCH_SYNQ := $(BENCH_DIR)/synq
BENCH_RUN := $(BENCH_DIR)/synqbench
BENCH_ROUNDS ?= 6
BENCH_DUR ?= 2s
BENCH_LABEL ?=
# More synqbench flags, e.g. BENCH_ARGS="-before /path/to/old/synq -before-rev abc123
# -ext-modes untraced,empty,synq-serve,synq-top,synq-top-before".
BENCH_ARGS ?=

# The third-party workloads' servers and clients, and bpftrace's mode.
BENCH_PKGS := nginx-light apache2-utils wrk redis-server bpftrace

.PHONY: bench-full bench-short bench-build bench-deps

bench-deps:
	@if [ "$$(id -u)" != 0 ]; then echo "bench-deps: not root, not installing $(BENCH_PKGS)"; exit 0; fi; \
	missing=""; for p in $(BENCH_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null || echo "bench-deps: could not install$$missing: their workloads and modes will report the error"; fi

bench-build:
	@mkdir -p $(BENCH_DIR)
	$(GOBUILD) -o $(BENCH_SYNQ) ./cmd/synq
	$(GO) build -o $(BENCH_RUN) ./bench/cmd/synqbench

bench-full: bench-build bench-deps
	@mkdir -p docs
	@if pgrep qemu >/dev/null; then echo "warning: QEMU is running: numbers will be distorted (the report says so)"; fi
	$(GO) test -run '^$$' -bench . -benchmem ./bench/ | tee $(BENCH_DIR)/reader.txt
	SYNQ_BENCH_SOCKETS=100000 $(GO) test -run '^$$' -bench BenchmarkCount -benchmem ./internal/sockstate/ | tee $(BENCH_DIR)/sockstate.txt
	$(BENCH_RUN) -synq $(BENCH_SYNQ) -rounds $(BENCH_ROUNDS) -dur $(BENCH_DUR) -c 8 -listeners 10000 -netns 10 \
		-label "$(BENCH_LABEL)" -findings bench/findings.md -gobench $(BENCH_DIR)/reader.txt,$(BENCH_DIR)/sockstate.txt -out docs/benchmarks.md $(BENCH_ARGS)

bench-short: bench-build bench-deps
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 1000x ./bench/
	@if [ "$$(id -u)" != 0 ]; then echo "bench-short: not root, skipping the privileged benchmarks"; exit 0; fi; \
	SYNQ_BENCH_SOCKETS=200 $(GO) test -run '^$$' -bench BenchmarkCount -benchtime 1x ./internal/sockstate/ && \
	$(BENCH_RUN) -synq $(BENCH_SYNQ) -rounds 1 -dur 1s -settle 500ms -listeners 200 -netns 2 \
		-ext-modes untraced,empty,tracer-top,synq-serve,synq-top,synq-trace,bpftrace
