#!/bin/bash
# go test -exec wrapper: runs the compiled (static) test binary as the payload
# of a throw-away VM and exits with its status, so plain `go test` output,
# -json and exit codes work:
#   CGO_ENABLED=0 VM_KERNEL=6.1 go test -exec "$PWD/vm/go-test-exec.sh" -v ./tracer/...
# Only the payload's own output goes to stdout. If the VM itself fails (no exit
# marker: panic, hang, timeout) the whole console goes to stderr and the exit
# status is 125.
# Env: VM_KERNEL   required: series (6.1; fetched if needed), extracted tree or image
#      SYNQ_*      passed into the guest command's environment, plus SYNQ_VM=1 and
#                  SYNQ_VM_KERNEL=<uname -r of the guest>
#      VM_ENV      names of other variables to pass (e.g. "GOTRACEBACK GODEBUG")
#      VM_FILES    extra files/dirs, FILE[:DEST] separated by spaces, packed into
#                  /payload (the guest's cwd). ./testdata is packed automatically
#                  (VM_TESTDATA=0 turns that off): go test runs the binary in
#                  the package directory and tests read testdata/ relative to it.
#      VM_MODULES  kernel modules to insmod at boot (e.g. "veth"), deps included
#      VM_VERBOSE  1: print "[vm] ..." boot/exit timing lines on stderr
#      VM_TIMEOUT  seconds (default: the binary's -test.timeout + 60, or 600)
#      VM_ACCEL    tcg | kvm; unset: chosen here (see vm_choose_accel in lib.sh),
#                  one "vm: ..." line on stderr saying which and why
#      VM_MEM, VM_SMP, VM_APPEND: see run-vm.sh
set -uo pipefail
. "$(dirname "$(realpath "$0")")/lib.sh"
VM_DIE_CODE=125
[ $# -ge 1 ] || vm_die "usage: VM_KERNEL=... $0 BINARY [ARGS...]"
bin=$(realpath "$1"); shift
resolve_kernel "${VM_KERNEL:?set VM_KERNEL to a series (e.g. 6.1), an extracted kernel tree or a vmlinuz}"
vm_choose_accel "${K_TREE:-$K_IMAGE}"
case $(file -b "$bin") in
*"statically linked"* | *"static-pie linked"*) ;;
*) vm_die "$bin is not static; build with CGO_ENABLED=0 (the VM has no libc)" ;;
esac

krel=
[ -n "$K_TREE" ] && [ -f "$K_TREE/synq-kernel.env" ] && krel=$(. "$K_TREE/synq-kernel.env" && echo "$KREL")
cmd="SYNQ_VM=1 SYNQ_VM_KERNEL=$(sq "$krel")"
for v in $(compgen -e | grep '^SYNQ_' | grep -vx -e SYNQ_VM -e SYNQ_VM_KERNEL -e SYNQ_CACHE) ${VM_ENV:-}; do
	[ -n "${!v+x}" ] && cmd+=" $v=$(sq "${!v}")"
done
cmd+=" ./$(sq "$(basename "$bin")")"
timeout=
for a; do
	cmd+=" $(sq "$a")"
	case $a in -test.timeout=*) timeout=${a#-test.timeout=} ;; esac
done
# Go duration (10m0s, 1h0m0s, 90s, 1.5m) -> seconds, + 60 s for boot and teardown
if [ -z "${VM_TIMEOUT:-}" ] && [ -n "$timeout" ] && [ "$timeout" != 0s ] && [ "$timeout" != 0 ]; then
	VM_TIMEOUT=$(awk -v d="$timeout" 'BEGIN { s = 0
		while (match(d, /^[0-9.]+(h|ms|us|µs|ns|m|s)/)) {
			n = substr(d, 1, RLENGTH); u = n; sub(/^[0-9.]+/, "", u); n += 0
			s += n * (u == "h" ? 3600 : u == "m" ? 60 : u == "s" ? 1 : 0)
			d = substr(d, RLENGTH + 1) }
		printf "%d", s + 60 }')
	export VM_TIMEOUT
fi

files=("$bin")
if [ "${VM_TESTDATA:-1}" = 1 ] && [ -d testdata ]; then files+=("$PWD/testdata"); fi
for f in ${VM_FILES:-}; do files+=("$f"); done
mods=()
for m in ${VM_MODULES:-}; do mods+=(-m "$m"); done

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$VM_DIR/mkinitrd.sh" -k "${K_TREE:-$K_IMAGE}" "${mods[@]}" "$tmp/initrd" "$cmd" "${files[@]}" || exit 125

# Stream the payload's lines (between the BOOTED and EXIT markers) as they come.
filter() {
	local on=0 line
	while IFS= read -r line || [ -n "$line" ]; do
		printf '%s\n' "$line" >>"$tmp/console"
		case $line in
		*SYNQVM-BOOTED*) on=1 ;;
		*SYNQVM-EXIT=*) [ $on = 1 ] && [ -n "${line%%SYNQVM-EXIT=*}" ] && printf '%s\n' "${line%%SYNQVM-EXIT=*}"; on=0 ;;
		*) [ $on = 1 ] && printf '%s\n' "$line" ;;
		esac
	done
}
# run-vm.sh gets TERM if we are killed (go test's -timeout kills only us) and
# takes the VM down with it.
: >"$tmp/console"
exec {out}> >(filter)
filt=$!
setpriv --pdeathsig TERM "$VM_DIR/run-vm.sh" "${K_TREE:-$K_IMAGE}" "$tmp/initrd" 2>"$tmp/host" 1>&"$out" &
vm=$!
trap 'kill -TERM $vm 2>/dev/null' INT TERM HUP
while :; do
	wait $vm; rc=$?
	kill -0 $vm 2>/dev/null || break # else wait was interrupted by a signal
done
exec {out}>&-
wait $filt 2>/dev/null # let the filter drain
[ "${VM_VERBOSE:-0}" = 1 ] && cat "$tmp/host" >&2
if [ "$rc" = 125 ]; then
	{ echo "go-test-exec: the VM failed (no exit marker); console:"; cat "$tmp/console" "$tmp/host"; } >&2
fi
exit "$rc"
