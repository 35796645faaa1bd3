# Kernel VM tests: the tracer's kernel tests run in QEMU on real Debian kernels
# (see vm/*.sh; kernels are cached in $SYNQ_CACHE, default ~/.cache/synq).
#   make vmtest [KERNELS="6.1 7.2"] [TIERS="fentry"] [VM_PKGS=./tracer/...] [VM_RUN=Kernel]
#   make vm-kernels   fetch the kernels only
#   make vm-procfs    capture /proc/net/{netstat,snmp,snmp6} of each kernel into testdata/procfs
# VM_RUN=Kernel selects the tests that need root: they are named TestKernel*
# (internal/kerneltest); VM_PKGS keeps the cells to the tier-dependent ones.
VM_SCRIPTS := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))/vm
KERNELS ?= 5.10 6.1 6.12 7.2
TIERS ?= fentry kprobe tracepoint
VM_PKGS ?= ./tracer/... ./internal/reconcile/...

.PHONY: vmtest vm-kernels vm-procfs vm-deps

vm-deps:
	$(VM_SCRIPTS)/deps.sh

vm-kernels: vm-deps
	$(VM_SCRIPTS)/fetch-kernel.sh $(KERNELS)

vmtest: vm-kernels
	KERNELS="$(KERNELS)" TIERS="$(TIERS)" VM_PKGS="$(VM_PKGS)" $(VM_SCRIPTS)/matrix.sh

vm-procfs: vm-kernels
	$(VM_SCRIPTS)/capture-procfs.sh $(KERNELS)

# Relative per-tier costs on each kernel, in TCG VMs (emulated time: compare
# tiers within one kernel only). Writes docs/benchmarks-vm.md.
.PHONY: vmbench
vmbench: vm-kernels
	$(VM_SCRIPTS)/bench.sh docs/benchmarks-vm.md $(KERNELS)
