#!/bin/bash
# usage: vm/run-vm.sh KERNEL INITRD [extra qemu args...]
#   KERNEL: a series (6.1), an extracted linux-image tree, or a bzImage /
#           PVH-capable vmlinux file, or an arm64 Image (see resolve_kernel in lib.sh).
#   INITRD: from vm/mkinitrd.sh.
# Streams the serial console to stdout (CR stripped) and exits with the
# payload's status, read from the "SYNQVM-EXIT=N" line; 125 when that never
# comes (kernel panic, hang, timeout). Timing lines ("[vm] ...") go to stderr.
# Env: VM_ACCEL   tcg | kvm; unset: KVM if a probe VM boots under it, else TCG
#                 (vm_choose_accel in lib.sh: a /dev/kvm may exist and still
#                 fail to run stock kernels)
#      VM_MEM     guest memory (1G)       VM_SMP  vCPUs (2)
#      VM_TIMEOUT seconds before the VM is killed (600)
#      VM_APPEND  extra kernel command line
#      VM_ARCH    x86 (default: qemu-system-x86_64 -M pc, ttyS0) | arm64
#                 (qemu-system-aarch64 -M virt -cpu max,pauth-impdef=on, ttyAMA0)
set -uo pipefail
. "$(dirname "$(realpath "$0")")/lib.sh"
VM_DIE_CODE=125
[ $# -ge 2 ] || vm_die "usage: $0 KERNEL INITRD [qemu args...]"
resolve_kernel "$1"
initrd=$2
shift 2
[ -f "$initrd" ] || vm_die "no initrd $initrd"
command -v "$QEMU" >/dev/null || "$VM_DIR/deps.sh" || vm_die "cannot install qemu"
vm_choose_accel "${K_TREE:-$K_IMAGE}"

case $VM_ACCEL in
kvm) acc=(-accel kvm -cpu host,-arch-capabilities) ;;
# Single-threaded TCG: with thread=multi, a vCPU can keep executing a stale
# translation of kernel text the other vCPU just patched (text_poke_bp's int3,
# e.g. when syscall tracepoints are attached or detached) and loop in
# asm_exc_int3 forever: soft lockups on 5.10 and 6.1 in our runs. Measured
# just as fast for our tests.
tcg)
	cpu=max
	[ "$VM_ARCH" = arm64 ] && cpu=max,pauth-impdef=on # see lib.sh
	acc=(-accel "tcg,thread=${VM_TCG_THREAD:-single}" -cpu "$cpu") ;;
*) vm_die "VM_ACCEL must be tcg or kvm" ;;
esac
name=$(basename "${K_TREE:-$K_IMAGE}")
t0=$EPOCHREALTIME
# qemu dies with us: setpriv --pdeathsig TERMs `timeout` if this script is
# killed, and `timeout` passes it on to qemu (also killed if `timeout` dies).
exec {con}< <(exec setpriv --pdeathsig TERM timeout -k 5 "${VM_TIMEOUT:-600}" \
	setpriv --pdeathsig KILL "$QEMU" "${QEMU_MACHINE[@]}" "${acc[@]}" \
	-m "${VM_MEM:-1G}" -smp "${VM_SMP:-2}" \
	-nodefaults -no-user-config -display none -serial stdio -no-reboot \
	-kernel "$K_IMAGE" -initrd "$initrd" \
	-append "console=$VM_CONSOLE quiet panic=-1 mitigations=off random.trust_cpu=on ${VM_APPEND:-}" \
	"$@" </dev/null 2>&1)
qpid=$!
trap 'kill -TERM $qpid 2>/dev/null; exit 125' INT TERM HUP
code=125
while IFS= read -r -u "$con" line || [ -n "$line" ]; do
	line=${line%$'\r'}
	printf '%s\n' "$line"
	case $line in
	# substring matches: SeaBIOS leaves escape sequences before the first line
	*SYNQVM-BOOTED*) vm_log "[vm] $name: payload started after $(elapsed "$t0") s" ;;
	*SYNQVM-EXIT=*) code=${line#*SYNQVM-EXIT=}; code=${code%% *} ;;
	esac
done
[[ $code =~ ^[0-9]+$ ]] || code=125
wait "$qpid"; qrc=$?
if [ "$code" = 125 ]; then
	case $qrc in
	124 | 137) vm_log "[vm] $name: timed out after ${VM_TIMEOUT:-600} s (VM_TIMEOUT)" ;;
	0) vm_log "[vm] $name: the guest stopped without an exit marker (panic, reset or too little memory?)" ;;
	*) vm_log "[vm] $name: qemu exited with status $qrc" ;;
	esac
fi
vm_log "[vm] $name: exit $code after $(elapsed "$t0") s"
exit "$code"
