# shellcheck shell=bash
# Common helpers for the vm/ scripts. Source it; do not run it.

VM_DIR=$(dirname "$(realpath "${BASH_SOURCE[0]}")")
SYNQ_CACHE=${SYNQ_CACHE:-${HOME:-/tmp}/.cache/synq}
KCACHE=$SYNQ_CACHE/kernels

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
