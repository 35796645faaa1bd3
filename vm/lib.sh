# shellcheck shell=bash
# Common helpers for the vm/ scripts. Source it; do not run it.

VM_DIR=$(dirname "$(realpath "${BASH_SOURCE[0]}")")
SYNQ_CACHE=${SYNQ_CACHE:-${HOME:-/tmp}/.cache/synq}

# The guest architecture: VM_ARCH=x86 (default) or arm64 (`make vmtest
# ARCH=arm64`). Everything that differs between them is set here: the Debian
# architecture of the kernel and busybox packages, the kernel cache (one per
# arch), QEMU's binary, machine, CPU and console.
VM_ARCH=${VM_ARCH:-x86}
case $VM_ARCH in
x86 | amd64)
	VM_ARCH=x86 DEB_ARCH=amd64 QEMU=qemu-system-x86_64 QEMU_MACHINE=(-M pc) VM_CONSOLE=ttyS0
	KCACHE=$SYNQ_CACHE/kernels ;;
arm64 | aarch64)
	# pauth-impdef: QEMU's own pointer-authentication algorithm instead of
	# the architected QARMA, which costs 10-14 s of TCG per boot instead of 3-5.
	VM_ARCH=arm64 DEB_ARCH=arm64 QEMU=qemu-system-aarch64 QEMU_MACHINE=(-M virt) VM_CONSOLE=ttyAMA0
	KCACHE=$SYNQ_CACHE/kernels-arm64 ;;
*) printf '%s: VM_ARCH must be x86 or arm64, not "%s"\n' "$(basename "$0")" "$VM_ARCH" >&2; exit 2 ;;
esac
export VM_ARCH
# vm_native: the guest has the host's architecture (KVM is possible at all).
vm_native() { [ "$DEB_ARCH" = "$(dpkg --print-architecture 2>/dev/null)" ]; }
# vm_busybox: the busybox-static binary of the guest architecture (the host's
# own, or the one fetch-kernel.sh extracted from busybox-static:arm64).
vm_busybox() {
	if vm_native; then printf '/bin/busybox\n'; else printf '%s\n' "$KCACHE/busybox/bin/busybox"; fi
}

vm_log() { printf '%s\n' "$*" >&2; }
vm_die() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; exit "${VM_DIE_CODE:-1}"; }

# is_series 6.1 -> true; 6.1.0-47-cloud-amd64 -> false
is_series() { [[ $1 =~ ^[0-9]+\.[0-9]+$ ]]; }

# kernel_image TREE -> path of the bootable image inside an extracted tree:
#   <= trixie packages: boot/vmlinuz-VER; forky 7.x split packages: usr/lib/modules/VER/vmlinuz
kernel_image() {
	local f
	for f in "$1"/boot/vmlinuz-* "$1"/usr/lib/modules/*/vmlinuz; do
		[ -f "$f" ] && { printf '%s\n' "$f"; return 0; }
	done
	return 1
}

# kernel_moddir TREE -> lib/modules/VER (or usr/lib/modules/VER) inside the tree
kernel_moddir() {
	local d
	for d in "$1"/lib/modules/* "$1"/usr/lib/modules/*; do
		[ -d "$d/kernel" ] && { printf '%s\n' "$d"; return 0; }
	done
	return 1
}

# resolve_kernel ARG: sets K_IMAGE (bootable image) and K_TREE (extracted
# package tree, or empty when ARG is a lone image file). ARG is one of
#   - a series (5.10, 6.1, ...): the kernel fetch-kernel.sh resolved last
#     (fetched now if it is not cached yet),
#   - an extracted tree (a directory),
#   - an image file (bzImage or PVH vmlinux); its tree is found by walking up
#     to the directory holding synq-kernel.env.
resolve_kernel() {
	local arg=$1 d
	K_TREE='' K_IMAGE=''
	if is_series "$arg"; then
		if [ ! -e "$KCACHE/$arg/synq-kernel.env" ]; then
			"$VM_DIR/fetch-kernel.sh" "$arg" >&2 || vm_die "cannot fetch kernel $arg"
		fi
		arg=$(realpath "$KCACHE/$arg")
	fi
	if [ -d "$arg" ]; then
		K_TREE=$(realpath "$arg")
		K_IMAGE=$(kernel_image "$K_TREE") || vm_die "no vmlinuz in $K_TREE"
	elif [ -f "$arg" ]; then
		K_IMAGE=$(realpath "$arg")
		d=$(dirname "$K_IMAGE")
		while [ "$d" != / ]; do
			[ -f "$d/synq-kernel.env" ] && { K_TREE=$d; break; }
			d=$(dirname "$d")
		done
	else
		vm_die "kernel '$arg' not found (want a series like 6.1, an extracted tree or an image file)"
	fi
}

# sq STRING -> STRING single-quoted for a POSIX shell (busybox ash)
sq() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

# elapsed T0 -> seconds since T0 with one decimal
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}'; }

# --- accelerator ----------------------------------------------------------------
# vm_choose_accel KERNEL: exports VM_ACCEL. A VM_ACCEL already set (tcg|kvm, by
# the user or by a parent script that chose it) is kept as it is. Otherwise KVM
# is used only when it actually runs a stock kernel: a /dev/kvm that opens is
# not enough (a paravirtual KVM such as the development machines' fails with
# "failed to set MSR 0x10a" or hangs), so one throw-away VM boots KERNEL under
# KVM with an empty payload and must print its exit marker within
# VM_KVM_PROBE_TIMEOUT seconds (20). The verdict is cached in
# $SYNQ_CACHE/accel/, keyed by host kernel, QEMU version and boot ID: one probe
# per boot, shared by concurrent callers (flock). A probe that could not even
# start QEMU (no initrd, bad kernel path) means TCG this time and is not
# cached. Nothing here fails the caller. Prints one line on stderr saying which
# accelerator and why.
vm_choose_accel() {
	local kernel=$1 dir key f why lk rc cached=''
	[ -n "${VM_ACCEL:-}" ] && return 0
	VM_ACCEL=tcg
	if ! vm_native; then
		why="$VM_ARCH guest on a $(uname -m) host: no KVM"
	elif [ ! -c /dev/kvm ] || [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
		why="/dev/kvm is absent or not read-writable"
	else
		dir=$SYNQ_CACHE/accel
		key="$(uname -r)_qemu-$("$QEMU" --version 2>/dev/null | awk 'NR == 1 {print $4}')_boot-$(cat /proc/sys/kernel/random/boot_id 2>/dev/null)"
		f=$dir/${key//[^A-Za-z0-9._+-]/_}
		if mkdir -p "$dir" 2>/dev/null && { exec {lk}>"$dir/.lock"; } 2>/dev/null; then
			flock "$lk"
			if IFS=$'\t' read -r VM_ACCEL why 2>/dev/null <"$f" && [[ $VM_ACCEL =~ ^(kvm|tcg)$ ]]; then
				cached=1
			else
				vm_kvm_probe "$kernel"; rc=$?
				VM_ACCEL=tcg why=$KVM_WHY
				[ $rc = 0 ] && VM_ACCEL=kvm
				[ $rc -le 1 ] && printf '%s\t%s\n' "$VM_ACCEL" "$why" >"$f"
			fi
			exec {lk}>&-
		else
			vm_kvm_probe "$kernel" && VM_ACCEL=kvm
			why="$KVM_WHY (not cached: $dir is not writable)"
		fi
	fi
	export VM_ACCEL
	vm_log "vm: $why: using ${VM_ACCEL^^}${cached:+ (verdict cached in $f)}"
}

# vm_kvm_probe KERNEL: boots KERNEL under KVM with an empty payload; sets
# KVM_WHY. Returns 0 when the payload's exit marker came, 1 when QEMU ran but
# the guest did not get there (a verdict on KVM), 2 when the probe could not
# run at all (a verdict on nothing).
vm_kvm_probe() {
	local kernel=$1 t=${VM_KVM_PROBE_TIMEOUT:-20} tmp rc err t0=$EPOCHREALTIME
	KVM_WHY="KVM probe not run (cannot make a temporary directory)"
	tmp=$(mktemp -d) || return 2
	if ! "$VM_DIR/mkinitrd.sh" "$tmp/initrd" true >"$tmp/mk" 2>&1; then
		KVM_WHY="KVM probe not run ($(head -1 "$tmp/mk"))"; rm -rf "$tmp"; return 2
	fi
	VM_ACCEL=kvm VM_TIMEOUT=$t setpriv --pdeathsig TERM "$VM_DIR/run-vm.sh" "$kernel" "$tmp/initrd" \
		>"$tmp/console" 2>"$tmp/host" </dev/null
	rc=$?
	# qemu's own complaint, e.g. "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x..."
	err=$(grep -v 'terminating on signal' "$tmp/console" | grep -m1 -o "$QEMU: .*" | cut -c1-120)
	if [ "$rc" = 0 ]; then
		KVM_WHY="KVM probe booted $(basename "$kernel") to its exit marker in $(elapsed "$t0") s"
	elif ! grep -q '^\[vm\] ' "$tmp/host"; then # run-vm.sh gave up before starting qemu
		KVM_WHY="KVM probe not run ($(grep -m1 . "$tmp/host"))"; rc=2
	elif grep -q 'timed out' "$tmp/host"; then
		KVM_WHY="KVM probe failed (no exit marker in ${t} s)"; rc=1
	elif [ -n "$err" ]; then
		KVM_WHY="KVM probe failed ($err)"; rc=1
	else
		KVM_WHY="KVM probe failed (no exit marker; the guest stopped after $(elapsed "$t0") s)"; rc=1
	fi
	rm -rf "$tmp"
	return "$rc"
}
