#!/bin/bash
# usage: vm/fetch-kernel.sh [-u] SERIES|ABI...
#   SERIES: 5.10 | 6.1 | 6.12 | 7.2 (any MAJOR.MINOR Debian ships), resolved to
#           (for VM_ARCH: x86 -> amd64 packages, arm64 -> arm64 ones, and then
#           busybox-static:arm64 too)
#           the newest linux-image-<ABI> in bullseye, bookworm, bookworm-security,
#           trixie or forky; ABI pins one, e.g. 6.1.0-47-cloud-amd64.
#   -u      refresh the package lists now (default: when older than a day).
# Prints "SERIES PATH-OF-VMLINUZ" per argument on stdout, progress on stderr.
# Exits non-zero if any kernel cannot be resolved or fetched.
#
# Env: SYNQ_CACHE (default ~/.cache/synq; kernels go to $SYNQ_CACHE/kernels,
#                 arm64 ones to $SYNQ_CACHE/kernels-arm64)
#      SYNQ_KERNEL_FLAVOUR  cloud (default; falls back to generic where Debian
#                           has no cloud build) | generic
#      SYNQ_APT_MAX_AGE     seconds before the private lists are refreshed (86400)
#      SYNQ_DEBIAN_MIRROR, SYNQ_DEBIAN_SECURITY_MIRROR  override the mirrors that
#                           are otherwise read from this machine's apt sources.
#
# The system apt configuration is never changed: apt runs on a private
# sources.list, lists and cache under $SYNQ_CACHE/kernels/apt.
# Cache layout: kernels/<ABI>/ is the extracted package tree (plus
# synq-kernel.env describing it), kernels/<SERIES> -> <ABI> the current pick.
# Package layouts handled:
#   <= trixie: linux-image-ABI ships boot/vmlinuz-ABI, boot/config-ABI, lib/modules/ABI
#   forky 7.x: linux-image-ABI is an empty meta package; the files come from
#              linux-base-ABI (usr/lib/modules/ABI/config), linux-binary-ABI
#              (usr/lib/modules/ABI/vmlinuz) and linux-modules-ABI.
set -euo pipefail
. "$(dirname "$(realpath "$0")")/lib.sh"

refresh=0
while getopts u o; do
	case $o in u) refresh=1 ;; *) sed -n '2,/^set /p' "$0" | sed '$d' >&2; exit 2 ;; esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || vm_die "usage: $0 [-u] SERIES|ABI... (e.g. 5.10 6.1 6.12 7.2)"

"$VM_DIR/deps.sh"
mkdir -p "$KCACHE"
exec 9>"$KCACHE/.lock"
flock 9 # one fetcher at a time (go test may start several VMs at once)

APTD=$KCACHE/apt
mkdir -p "$APTD/lists/partial" "$APTD/cache/archives/partial" "$KCACHE/debs"
APT=(-o "Dir::Etc::sourcelist=$APTD/sources.list" -o Dir::Etc::sourceparts=-
	-o "Dir::State::Lists=$APTD/lists" -o "Dir::Cache=$APTD/cache"
	-o Dir::Cache::pkgcache=pkgcache.bin -o Dir::Cache::srcpkgcache=srcpkgcache.bin
	-o Dir::State::status=/dev/null -o APT::Sandbox::User=root
	-o "APT::Architecture=$DEB_ARCH" -o "APT::Architectures=$DEB_ARCH"
	-o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false
	-o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false
	-o Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false)

# --- mirrors, from this machine's own apt sources -----------------------------
# Prints "SUITE URI SIGNED-BY" for every enabled deb entry (deb822 and one-line).
system_entries() {
	local f
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk -v RS= -F'\n' '{
			types = uris = suites = sb = ""; enabled = 1
			for (i = 1; i <= NF; i++) {
				line = $i; sub(/#.*/, "", line)
				if (match(line, /^[A-Za-z-]+:/)) {
					k = tolower(substr(line, 1, RLENGTH - 1)); v = substr(line, RLENGTH + 1)
					gsub(/^[ \t]+|[ \t]+$/, "", v)
					if (k == "types") types = v; else if (k == "uris") uris = v
					else if (k == "suites") suites = v; else if (k == "signed-by") sb = v
					else if (k == "enabled" && tolower(v) == "no") enabled = 0
				}
			}
			if (!enabled || types !~ /(^| )deb( |$)/) next
			split(uris, u, /[ \t]+/); n = split(suites, s, /[ \t]+/)
			for (j = 1; j <= n; j++) print s[j], u[1], (sb ~ /^\// ? sb : "-")
		}' "$f"
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		awk '$1 == "deb" {
			sb = "-"; i = 2
			if ($2 ~ /^\[/) {
				for (; i <= NF; i++) {
					if ($i ~ /^\[?signed-by=/) { sb = $i; sub(/^\[?signed-by=/, "", sb); sub(/\]$/, "", sb) }
					if ($i ~ /\]$/) { i++; break }
				}
			}
			print $(i + 1), $i, (sb ~ /^\// ? sb : "-")
		}' "$f"
	done
}
entries=$(system_entries)
codenames='^(buster|bullseye|bookworm|trixie|forky|duke|sid|oldstable|stable|testing|unstable)$'
pick() { # $1 = awk condition on the suite ($1); prints "URI SIGNED-BY" of the first match
	awk "$1"' { print $2, $3; exit }' <<<"$entries"
}
main=$(pick '$1 == "bookworm"'); [ -n "$main" ] || main=$(pick "\$1 ~ /$codenames/")
sec=$(pick '$1 == "bookworm-security"'); [ -n "$sec" ] || sec=$(pick '$1 ~ /-security$/')
read -r main_uri main_sb <<<"${main:-- -}"
read -r sec_uri sec_sb <<<"${sec:-- -}"
main_uri=${SYNQ_DEBIAN_MIRROR:-$main_uri}
[ "$main_uri" != - ] || vm_die "no Debian mirror found in /etc/apt/sources.list{,.d/*}; set SYNQ_DEBIAN_MIRROR"
# The security archive lives beside the main one (.../debian -> .../debian-security).
[ "$sec_uri" != - ] || { sec_uri=${main_uri%/}-security; sec_sb=$main_sb; }
sec_uri=${SYNQ_DEBIAN_SECURITY_MIRROR:-$sec_uri}
opt() { [ "$1" = - ] || printf '[signed-by=%s] ' "$1"; }
new_sources=$(
	for s in bullseye bookworm; do echo "deb $(opt "$main_sb")$main_uri $s main"; done
	echo "deb $(opt "$sec_sb")$sec_uri bookworm-security main"
	for s in trixie forky; do echo "deb $(opt "$main_sb")$main_uri $s main"; done
)
if [ "$new_sources" != "$(cat "$APTD/sources.list" 2>/dev/null)" ]; then
	printf '%s\n' "$new_sources" >"$APTD/sources.list"
	rm -f "$APTD/lists/.stamp"
fi

# --- package lists --------------------------------------------------------------
stamp=$APTD/lists/.stamp
age=$(( $(date +%s) - $(stat -c %Y "$stamp" 2>/dev/null || echo 0) ))
if [ $refresh = 1 ] || [ "$age" -gt "${SYNQ_APT_MAX_AGE:-86400}" ]; then
	vm_log "fetch-kernel: updating package lists ($main_uri, $sec_uri)"
	if apt-get "${APT[@]}" -q update >"$APTD/update.log" 2>&1 && ! grep -q '^[WE]: ' "$APTD/update.log"; then
		touch "$stamp"
	elif [ -f "$stamp" ]; then
		vm_log "fetch-kernel: WARNING: apt-get update failed, using lists from $(date -r "$stamp"):"
		grep '^[WE]: ' "$APTD/update.log" >&2 || tail -5 "$APTD/update.log" >&2
	else
		cat "$APTD/update.log" >&2; vm_die "apt-get update failed"
	fi
fi

# --- resolution -------------------------------------------------------------------
# newest_abi SERIES FLAVOUR -> newest ABI with a downloadable linux-image-ABI
newest_abi() {
	local series=$1 flav re names
	case $2 in cloud) flav=cloud- ;; *) flav= ;; esac
	re="^linux-image-${series//./\\.}\\.[0-9]+([-+][a-z0-9]+)?-${flav}${DEB_ARCH}\$"
	names=$(apt-cache "${APT[@]}" pkgnames "linux-image-$series." | grep -E "$re" || true)
	[ -n "$names" ] || return 0
	# pkgnames also lists names only referenced by other packages: keep real ones.
	# shellcheck disable=SC2086
	apt-cache "${APT[@]}" madison $names | awk '{print $1}' | sort -uV | tail -1 | sed 's/^linux-image-//'
}

# field PKG FIELD -> that field of the candidate version
field() { apt-cache "${APT[@]}" show --no-all-versions "$1" 2>/dev/null | awk -v f="$2:" '$1 == f { sub(/^[^:]*: */, ""); print; exit }'; }

fetch_abi() { # ABI SERIES -> extracts kernels/ABI unless present
	local abi=$1 series=$2 tree=$KCACHE/$1 tmp ver suite pkgs p deb moddir krel img deps
	[ -f "$tree/synq-kernel.env" ] && return 0
	ver=$(field "linux-image-$abi" Version)
	[ -n "$ver" ] || { vm_log "fetch-kernel: no package linux-image-$abi"; return 1; }
	suite=$(apt-cache "${APT[@]}" madison "linux-image-$abi" | awk -F'|' -v v="$ver" '{gsub(/ /, "", $2)} $2 == v {n = split($3, a, " "); sub(/\/.*/, "", a[2]); print a[2]; exit}')
	# (not `field | grep -q`: with pipefail, apt-cache's SIGPIPE when awk
	# exits early can fail the test on a package that has the dependency)
	deps=$(field "linux-image-$abi" Depends || true)
	if [[ $deps == *"linux-binary-$abi"* ]]; then
		pkgs=("linux-base-$abi" "linux-binary-$abi" "linux-modules-$abi") # 7.x split layout
	else
		pkgs=("linux-image-$abi")
	fi
	vm_log "fetch-kernel: $series -> ${pkgs[*]} $ver ($suite)"
	(cd "$KCACHE/debs" && apt-get "${APT[@]}" -q download "${pkgs[@]}" >&2) ||
		{ vm_log "fetch-kernel: download of ${pkgs[*]} failed"; return 1; }
	tmp=$KCACHE/.tmp-$abi
	rm -rf "$tmp"; mkdir -p "$tmp"
	for p in "${pkgs[@]}"; do
		deb=$(printf "%s\n" "$KCACHE/debs/${p}_"*"_${DEB_ARCH}.deb" | sort -V | tail -1)
		dpkg-deb -x "$deb" "$tmp"
	done
	img=$(kernel_image "$tmp") || { vm_log "fetch-kernel: no vmlinuz in ${pkgs[*]}"; return 1; }
	moddir=$(kernel_moddir "$tmp") || { vm_log "fetch-kernel: no modules in ${pkgs[*]}"; return 1; }
	krel=$(basename "$moddir")
	# depmod -b wants the directory holding lib/modules: TREE or TREE/usr (usr-merged)
	depmod -b "$(dirname "$(dirname "$(dirname "$moddir")")")" "$krel"
	cat >"$tmp/synq-kernel.env" <<-EOF
		SERIES=$series
		ABI=$abi
		KREL=$krel
		PACKAGES="${pkgs[*]}"
		VERSION=$ver
		SUITE=$suite
		IMAGE=${img#"$tmp"/}
		FETCHED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
	EOF
	rm -rf "$tree"; mv "$tmp" "$tree"
	for p in "${pkgs[@]}"; do rm -f "$KCACHE/debs/${p}_"*.deb; done
}

# A foreign guest's busybox-static, extracted to $KCACHE/busybox (the host's
# /bin/busybox serves a native guest): the host's dpkg architectures stay as
# they are.
fetch_busybox() {
	local bb=$KCACHE/busybox deb
	vm_native && return 0
	[ -x "$bb/bin/busybox" ] && return 0
	vm_log "fetch-kernel: busybox-static:$DEB_ARCH"
	(cd "$KCACHE/debs" && apt-get "${APT[@]}" -q download "busybox-static:$DEB_ARCH" >&2) ||
		{ vm_log "fetch-kernel: download of busybox-static:$DEB_ARCH failed"; return 1; }
	deb=$(printf "%s\n" "$KCACHE/debs/busybox-static_"*"_${DEB_ARCH}.deb" | sort -V | tail -1)
	rm -rf "$bb.tmp"; mkdir -p "$bb.tmp/bin"
	dpkg-deb -x "$deb" "$bb.tmp/root" && # bin/ or, usr-merged (forky), usr/bin/
		cp "$(ls "$bb.tmp/root"/{usr/,}bin/busybox 2>/dev/null | head -1)" "$bb.tmp/bin/busybox" &&
		rm -rf "$bb.tmp/root" "$deb" && rm -rf "$bb" && mv "$bb.tmp" "$bb"
}

rc=0
fetch_busybox || rc=1
for arg; do
	if is_series "$arg"; then
		series=$arg abi=
		case ${SYNQ_KERNEL_FLAVOUR:-cloud} in
		cloud) abi=$(newest_abi "$series" cloud); [ -n "$abi" ] || abi=$(newest_abi "$series" generic) ;;
		*) abi=$(newest_abi "$series" generic) ;;
		esac
		[ -n "$abi" ] || { vm_log "fetch-kernel: no linux-image-$series.* in $(awk '{print $3}' "$APTD/sources.list" | paste -sd' ')"; rc=1; continue; }
	else
		abi=${arg#linux-image-} series=$(sed -E 's/^([0-9]+\.[0-9]+).*/\1/' <<<"$arg")
	fi
	if ! fetch_abi "$abi" "$series"; then rc=1; continue; fi
	old=$(readlink "$KCACHE/$series" 2>/dev/null || true)
	ln -sfn "$abi" "$KCACHE/$series"
	# drop the tree this series pointed at before, if it was replaced
	if is_series "$arg" && [ -n "$old" ] && [ "$old" != "$abi" ] && [ -d "$KCACHE/$old" ] && [[ $old != */* ]]; then
		vm_log "fetch-kernel: removing superseded $old"; rm -rf "${KCACHE:?}/$old"
	fi
	printf '%s %s\n' "$series" "$(kernel_image "$KCACHE/$abi")"
done
exit $rc
