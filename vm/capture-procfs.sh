#!/bin/bash
# usage: vm/capture-procfs.sh [SERIES...]   (default: $KERNELS or 5.10 6.1 6.12 7.2)
# Boots each kernel with a payload that prints /proc/net/{netstat,snmp,snmp6}
# between markers and writes them to $PROCFS_OUT/<series>/ (default
# testdata/procfs in the repo), plus this host's own files under
# $PROCFS_OUT/<host MAJOR.MINOR>/ (PROCFS_HOST=0 to skip).
set -euo pipefail
. "$(dirname "$(realpath "$0")")/lib.sh"

[ $# -gt 0 ] || { read -ra ks <<<"${KERNELS:-5.10 6.1 6.12 7.2}"; set -- "${ks[@]}"; }
outdir=$(realpath -m "${PROCFS_OUT:-$VM_DIR/../testdata/procfs}")
files=(netstat snmp snmp6)
"$VM_DIR/deps.sh"

check() { # DIR: each file present, non-empty and in the expected format
	local d=$1
	grep -q '^TcpExt: ' "$d/netstat" || vm_die "$d/netstat: no TcpExt lines"
	grep -q '^Tcp: ' "$d/snmp" || vm_die "$d/snmp: no Tcp lines"
	grep -qE '^Ip6InReceives[[:space:]]' "$d/snmp6" || vm_die "$d/snmp6: no Ip6InReceives"
}

kout=$("$VM_DIR/fetch-kernel.sh" "$@") || vm_die "fetching kernels $* failed"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
payload=''
for f in "${files[@]}"; do
	payload+="echo SYNQVM-FILE-BEGIN $f; cat /proc/net/$f; echo SYNQVM-FILE-END $f; "
done
"$VM_DIR/mkinitrd.sh" "$tmp/initrd" "$payload"
while read -r series image; do
	"$VM_DIR/run-vm.sh" "$image" "$tmp/initrd" >"$tmp/console" || {
		cat "$tmp/console" >&2; vm_die "VM with kernel $series failed"
	}
	d=$outdir/$series
	mkdir -p "$d"
	for f in "${files[@]}"; do
		awk -v f="$f" '$0 ~ "SYNQVM-FILE-END " f "$" { on = 0 } on { print } $0 ~ "SYNQVM-FILE-BEGIN " f "$" { on = 1 }' \
			"$tmp/console" >"$d/$f"
	done
	check "$d"
	echo "capture-procfs: $series ($image) -> $d"
done <<<"$kout"

if [ "${PROCFS_HOST:-1}" = 1 ]; then
	series=$(uname -r | grep -oE '^[0-9]+\.[0-9]+')
	d=$outdir/$series
	mkdir -p "$d"
	for f in "${files[@]}"; do cat "/proc/net/$f" >"$d/$f"; done
	check "$d"
	echo "capture-procfs: host $(uname -r) -> $d"
fi
