# Kernel VM tests: the tracer's kernel tests run in QEMU on real Debian kernels
# (see vm/*.sh; kernels are cached in $SYNQ_CACHE, default ~/.cache/synq).
#   make vmtest [ARCH=x86|arm64|"x86 arm64"] [KERNELS="6.1 7.2"] [TIERS="fentry"]
#               [VM_PKGS=./tracer/...] [VM_RUN=Kernel] [VM_JOBS=2]
#   make vm-kernels   fetch the kernels only
#   make vm-procfs    capture /proc/net/{netstat,snmp,snmp6} of each kernel into testdata/procfs
# VM_RUN=Kernel selects the tests that need root: they are named TestKernel*
# (internal/kerneltest); VM_PKGS keeps the cells to the tier-dependent ones.
VM_SCRIPTS := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))/vm
# ARCH: the guests' architectures (x86, arm64: emulated by TCG on an x86
# host); make test runs both. VM_JOBS: cells at once (one per core).
ARCH ?= x86
KERNELS ?= 5.10 6.1 6.12 7.2
TIERS ?= fentry kprobe tracepoint auto
VM_JOBS ?= 2
VM_PKGS ?= ./tracer/... ./internal/reconcile/...

.PHONY: vmtest vm-kernels vm-procfs vm-deps

vm-deps:
	$(VM_SCRIPTS)/deps.sh

vm-kernels: vm-deps
	for a in $(ARCH); do VM_ARCH=$$a $(VM_SCRIPTS)/fetch-kernel.sh $(KERNELS) || exit 1; done

vmtest: vm-kernels
	VM_ARCHES="$(ARCH)" KERNELS="$(KERNELS)" TIERS="$(TIERS)" VM_PKGS="$(VM_PKGS)" VM_JOBS="$(VM_JOBS)" $(VM_SCRIPTS)/matrix.sh

vm-procfs: vm-kernels
	VM_ARCH=$(firstword $(ARCH)) $(VM_SCRIPTS)/capture-procfs.sh $(KERNELS)

# Relative per-tier costs on each kernel, in TCG VMs (emulated time: compare
# tiers within one kernel only). Writes docs/benchmarks-vm.md (x86) or
# docs/benchmarks-vm-arm64.md.
.PHONY: vmbench
vmbench: vm-kernels
	for a in $(ARCH); do VM_ARCH=$$a $(VM_SCRIPTS)/bench.sh docs/benchmarks-vm$$([ $$a = x86 ] || echo -$$a).md $(KERNELS) || exit 1; done
