#!/bin/bash
# usage: vm/deps.sh
# Installs the Debian packages the test VMs need, if any is missing (CI machines
# start fresh). Quiet and fast when everything is already there.
set -euo pipefail
pkgs=(qemu-system-x86 qemu-system-arm busybox-static cpio xz-utils zstd lz4 kmod file apt dpkg util-linux)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
[ ${#missing[@]} = 0 ] && exit 0
echo "vm/deps.sh: installing ${missing[*]}" >&2
sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
export DEBIAN_FRONTEND=noninteractive
# apt-get install fails on a machine whose lists were never fetched: update and retry.
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 ||
	{ $sudo apt-get update -q >&2 && $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; }
