#!/bin/bash
# usage: vm/mkinitrd.sh [-k KERNEL] [-m MODULE]... OUT.cpio CMD [FILE[:DEST]]...
#   Packs an uncompressed newc initramfs: busybox-static (of VM_ARCH), vm/init as /init, a
#   few /etc files, the FILEs and CMD (a shell command line, run by busybox sh
#   in /payload) as /payload/cmd.
#   FILE[:DEST]  a file or directory, copied to /payload/<basename> or to DEST
#                (relative to /payload, or absolute in the guest).
#   -m MODULE    kernel module to load at boot (with its dependencies, from
#                modules.dep); needs -k. Built-in (=y) modules are skipped.
#                Compressed modules are decompressed here: busybox insmod can't.
#   -k KERNEL    series (6.1), extracted tree or image, see resolve_kernel in lib.sh.
set -euo pipefail
. "$(dirname "$(realpath "$0")")/lib.sh"

kernel='' mods=()
while getopts k:m: o; do
	case $o in k) kernel=$OPTARG ;; m) mods+=("$OPTARG") ;; *) exit 2 ;; esac
done
shift $((OPTIND - 1))
[ $# -ge 2 ] || vm_die "usage: $0 [-k KERNEL] [-m MODULE]... OUT.cpio CMD [FILE[:DEST]]..."
out=$(realpath -m "$1") cmd=$2
shift 2

st=$(mktemp -d); trap 'rm -rf "$st"' EXIT
mkdir -p "$st"/{bin,sbin,etc,proc,sys,dev,tmp,run,var,payload,modules,root}
ln -s ../run "$st/var/run"   # /var/run/netns (vishvananda/netns, ip netns)
ln -s ../tmp "$st/var/tmp"
bb=$(vm_busybox)
[ -x "$bb" ] || vm_die "no $VM_ARCH busybox at $bb (vm/fetch-kernel.sh fetches it)"
cp "$bb" "$st/bin/busybox"
cp "$VM_DIR/init" "$st/init"
chmod 755 "$st/init"
# enough /etc for Go's net and os/user packages (localhost, user lookups)
printf '127.0.0.1\tlocalhost synqvm\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$st/etc/hosts"
echo 'hosts: files dns' >"$st/etc/nsswitch.conf"
: >"$st/etc/resolv.conf"
echo 'root:x:0:0:root:/root:/bin/sh' >"$st/etc/passwd"
echo 'root:x:0:' >"$st/etc/group"

for f; do
	src=${f%%:*} dst=
	[ "$src" != "$f" ] && dst=${f#*:}
	[ -e "$src" ] || vm_die "no such file: $src"
	case $dst in
	'') dst=$st/payload/ ;;
	/*) dst=$st$dst ;;
	*) dst=$st/payload/$dst ;;
	esac
	mkdir -p "$(dirname "${dst%/}")"
	cp -a "$src" "$dst"
done
printf '%s\n' "$cmd" >"$st/payload/cmd"

if [ ${#mods[@]} -gt 0 ]; then
	[ -n "$kernel" ] || vm_die "-m needs -k KERNEL"
	resolve_kernel "$kernel"
	[ -n "$K_TREE" ] || vm_die "-m needs an extracted kernel tree, not a lone image"
	mdir=$(kernel_moddir "$K_TREE") || vm_die "no modules in $K_TREE"
	declare -A seen=()
	order=()
	add() { # $1 = module path relative to mdir, dependencies first
		[ -n "${seen[$1]:-}" ] && return 0
		seen[$1]=1
		local d
		for d in $(grep -E "^$1:" "$mdir/modules.dep" | cut -d: -f2-); do add "$d"; done
		order+=("$1")
	}
	for m in "${mods[@]}"; do
		re="[^:]*/(${m//[-_]/[-_]})\\.ko(\\.xz|\\.zst|\\.gz)?"
		p=$(grep -oE "^$re:" "$mdir/modules.dep" | head -1 | tr -d :) || true
		if [ -n "$p" ]; then add "$p"
		elif grep -qE "/${m//[-_]/[-_]}\\.ko\$" "$mdir/modules.builtin" 2>/dev/null; then :
		else vm_die "module $m is neither in $mdir/modules.dep nor built in"
		fi
	done
	for p in "${order[@]}"; do
		b=$(basename "$p")
		case $p in
		*.xz) b=${b%.xz}; xz -dc "$mdir/$p" >"$st/modules/$b" ;;
		*.zst) b=${b%.zst}; zstd -qdc "$mdir/$p" >"$st/modules/$b" ;;
		*.gz) b=${b%.gz}; gzip -dc "$mdir/$p" >"$st/modules/$b" ;;
		*) cp "$mdir/$p" "$st/modules/$b" ;;
		esac
		echo "$b" >>"$st/modules/order"
	done
fi
(cd "$st" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$out"
