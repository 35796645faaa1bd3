#!/bin/bash
# usage: vm/matrix.sh
# Runs the kernel tests of VM_PKGS in a VM for every arch x kernel x tier,
# prints an arch/kernel x tier table of pass / fail / skip (reason), writes it
# as markdown and exits non-zero if any cell failed. Each cell is
#   VM_ARCH=<arch> GOARCH=<amd64|arm64> SYNQ_TEST_TIER=<tier> SYNQ_KERNEL_SERIES=<kernel> \
#     CGO_ENABLED=0 go test -exec vm/go-test-exec.sh -count=1 -v $VM_GOTEST_FLAGS $VM_PKGS -run "$VM_RUN"
# run from the current directory, with its whole output in
# $VM_LOGDIR/<arch>-<kernel>-<tier>.log; VM_JOBS cells (2) run at once.
# A cell is "skip" when every test in it skipped (reason: the first skip's
# message), "fail" when go test failed or ran no test at all. A tier the kernel
# refuses fails its cell (SYNQ_TEST_REQUIRE_TIER=1, TestKernelTierEvents),
# except in the cells vm/refusals declares: there the tier must be refused
# ("refused by the kernel (expected)"), and attaching fails the cell.
# SYNQ_TEST_REQUIRE_TIER= (empty) makes any refusal a skip, for a kernel
# built without kprobes or BPF trampolines.
# The "auto" tier column runs TestKernelTierAuto and TestKernelTierEvents of
# ./tracer with SYNQ_TEST_TIER=auto: the choice must end on the best tier
# vm/refusals leaves the kernel, and say why it skipped the better ones.
# Env: VM_ARCHES      "x86" (x86 arm64), each with its kernels (vm/lib.sh)
#      KERNELS        series to test ("5.10 6.1 6.12 7.2"), fetched by vm/fetch-kernel.sh
#      TIERS          "fentry kprobe tracepoint auto"
#      VM_PKGS        packages ("./tracer/...")
#      VM_RUN         -run pattern ("Kernel": tests that need root are named
#                     TestKernel*, see internal/kerneltest)
#      VM_JOBS        cells at once (2): each VM runs one single-threaded TCG
#                     vCPU thread, so one cell per host core
#      VM_GOTEST_FLAGS  extra go test flags ("-p 1 -timeout 30m": one VM per
#                     cell at a time, so timing-sensitive tests don't compete)
#      VM_LOGDIR      ($SYNQ_CACHE/vmlogs)   VM_MATRIX_OUT  (testdata/matrix.md)
#      VM_REPORT_ONLY 1: run nothing, make the table from the logs in VM_LOGDIR
#                     (VM_REPORT_TOTAL: what that run took, for the header)
#      and those of vm/go-test-exec.sh (VM_MODULES, VM_FILES, VM_MEM, ...).
#      VM_ACCEL       tcg | kvm; unset: chosen once per arch for the run
#                     (vm_choose_accel in lib.sh: KVM only for a native guest
#                     that a probe VM boots under it)
set -uo pipefail
. "$(dirname "$(realpath "$0")")/lib.sh"

read -ra arches <<<"${VM_ARCHES:-x86}"
read -ra kernels <<<"${KERNELS:-5.10 6.1 6.12 7.2}"
read -ra tiers <<<"${TIERS:-fentry kprobe tracepoint auto}"
read -ra pkgs <<<"${VM_PKGS:-./tracer/...}"
read -ra gflags <<<"${VM_GOTEST_FLAGS--p 1 -timeout 30m}"
run=${VM_RUN:-Kernel}
njobs=${VM_JOBS:-2}
logdir=${VM_LOGDIR:-$SYNQ_CACHE/vmlogs}
out=${VM_MATRIX_OUT:-testdata/matrix.md}
[[ $njobs =~ ^[1-9][0-9]*$ ]] || vm_die "VM_JOBS must be a positive number, not '$njobs'"
mkdir -p "$logdir"
"$VM_DIR/deps.sh" || vm_die "cannot install the VM dependencies"
T0=$EPOCHREALTIME

# The expected refusals: "arch/kernel/tier" -> why (vm/refusals).
declare -A refused
while IFS=$'\t' read -r a k t why; do
	[[ -z $a || $a == \#* ]] && continue
	refused[$a/$k/$t]=$why
done <"$VM_DIR/refusals"
goarch() { case $1 in arm64) echo arm64 ;; *) echo amd64 ;; esac; }

# Kernels: not getting one is an error, never a skip.
declare -A kimg accel
export CGO_ENABLED=0
for a in "${arches[@]}"; do
	kout=$(VM_ARCH=$a "$VM_DIR/fetch-kernel.sh" "${kernels[@]}") || vm_die "fetching $a kernels ${kernels[*]} failed"
	while read -r s p; do kimg[$a/$s]=$p; done <<<"$kout"
	for k in "${kernels[@]}"; do [ -n "${kimg[$a/$k]:-}" ] || vm_die "$a kernel $k was not resolved"; done
	[ "${VM_REPORT_ONLY:-0}" = 1 ] && { accel[$a]=${VM_ACCEL:-tcg}; continue; }
	# Build once up front (all cores): a build error fails here, not in every cell.
	echo "matrix: building ${pkgs[*]} for $a"
	if ! bout=$(GOARCH=$(goarch "$a") go test -count=1 -run '^$' -exec /bin/true "${pkgs[@]}" 2>&1); then
		printf '%s\n' "$bout"; vm_die "go test build failed"
	fi
	# One accelerator per arch for the whole run: a failed KVM probe costs its
	# timeout once here, never in a cell (the cells inherit it).
	accel[$a]=$(VM_ARCH=$a; . "$VM_DIR/lib.sh"; vm_choose_accel "${kimg[$a/${kernels[0]}]}"; echo "$VM_ACCEL")
done
echo "matrix: kernels fetched and tests built in $(elapsed "$T0") s"

# expect_auto ARCH KERNEL -> the best tier vm/refusals leaves the kernel
expect_auto() {
	local t
	for t in fentry kprobe tracepoint; do [ -z "${refused[$1/$2/$t]:-}" ] && { echo "$t"; return; }; done
}

# run_cell ARCH KERNEL TIER: one go test run; writes LOG, LOG.rc, LOG.secs
run_cell() {
	local a=$1 k=$2 t=$3 log=$logdir/$1-$2-$3.log t0=$EPOCHREALTIME rc
	local cpkgs=("${pkgs[@]}") crun=$run
	(
		export VM_ARCH=$a GOARCH=$(goarch "$a") VM_ACCEL=${accel[$a]} VM_KERNEL=${kimg[$a/$k]} VM_VERBOSE=1
		export SYNQ_TEST_TIER=$t SYNQ_KERNEL_SERIES=$k
		export SYNQ_TEST_REQUIRE_TIER=${SYNQ_TEST_REQUIRE_TIER-1}
		# A declared refusal: the tests skip with the kernel's reason (checked below).
		[ -n "${refused[$a/$k/$t]:-}" ] && SYNQ_TEST_REQUIRE_TIER=
		if [ "$t" = auto ]; then
			export SYNQ_TEST_EXPECT_TIER; SYNQ_TEST_EXPECT_TIER=$(expect_auto "$a" "$k")
			cpkgs=(./tracer/) crun='^TestKernelTier(Auto|Events)$'
		fi
		echo "# VM_ARCH=$a SYNQ_TEST_TIER=$t SYNQ_KERNEL_SERIES=$k SYNQ_TEST_REQUIRE_TIER=$SYNQ_TEST_REQUIRE_TIER${SYNQ_TEST_EXPECT_TIER:+ SYNQ_TEST_EXPECT_TIER=$SYNQ_TEST_EXPECT_TIER} VM_KERNEL=$VM_KERNEL"
		echo "# go test -exec $VM_DIR/go-test-exec.sh -count=1 -v ${gflags[*]} ${cpkgs[*]} -run $crun"
		go test -exec "$VM_DIR/go-test-exec.sh" -count=1 -v "${gflags[@]}" "${cpkgs[@]}" -run "$crun"
	) >"$log" 2>&1
	rc=$?
	echo "$rc" >"$log.rc"
	elapsed "$t0" >"$log.secs"
	echo "matrix: $a/$k/$t finished (go test exit $rc) in $(cat "$log.secs") s"
}

# summarize LOG RC REFUSED -> "status<TAB>detail" (REFUSED: why vm/refusals
# expects the tier refused, or empty)
summarize() {
	awk -v rc="$2" -v refused="$3" '
	function top(n) { sub(/\/.*/, "", n); return n }
	/^=== (RUN|CONT|NAME|PAUSE) / { cur = top($3); next }
	/^--- (PASS|FAIL|SKIP): / {
		st = $2; sub(/:$/, "", st); n = $3; cur = ""
		if (st == "PASS") pass++
		else if (st == "FAIL") { fail++; failed = failed (failed == "" ? "" : " ") n }
		else { skip++; if (why == "") { why = last[n]; want = (why == "") } }
		next
	}
	/^[ \t]+[^ \t]+\.go:[0-9]+: / {
		msg = $0; sub(/^[ \t]+[^ \t]+\.go:[0-9]+: /, "", msg)
		if (want) { why = msg; want = 0 }   # reason printed after the SKIP line
		if (msg ~ /^tier [a-z]+ on /) opened = 1  # kerneltest.Open got the tier
		if (kwhy == "" && msg ~ /not available: / && match(msg, /tier [a-z]+: .*/)) kwhy = substr(msg, RSTART)
		if (cur != "") last[cur] = msg      # streamed (-v) logs: reason printed before it
		next
	}
	/^[^ \t]/ { want = 0 }
	/go-test-exec: the VM failed/ { vmfail = 1 }
	/^(FAIL|ok) .*\[build failed\]|^# / { buildfail = 1 }
	END {
		# A declared refusal: no test got the tier, and the kernel said why
		# (a test whose subtests all skipped passes: opened tells).
		if (refused != "") {
			if (rc == 0 && fail == 0 && !opened && kwhy != "") print "refused\t" kwhy
			else print "fail\t" (opened ? "attached, but vm/refusals says the kernel refuses it" : failed != "" ? failed : "not refused as vm/refusals says")
			exit
		}
		if (rc != 0) {
			d = failed != "" ? failed : vmfail ? "VM failed" : buildfail ? "build failed" : "go test exit " rc
			if (length(d) > 60) d = substr(d, 1, 57) "..."
			print "fail\t" d
		} else if (pass + fail + skip == 0) print "fail\tno tests ran"
		else if (pass == 0) print "skip\t" (why == "" ? "no reason given" : why)
		else print "pass\t" (skip ? skip " skipped" : "")
	}' "$1"
}

declare -A status detail secs
npass=0 nfail=0 nskip=0 nref=0
cells=() long=() short=()
for a in "${arches[@]}"; do for k in "${kernels[@]}"; do for t in "${tiers[@]}"; do
	cells+=("$a/$k/$t")
	# The long cells first, the short ones (auto, a declared refusal: one
	# boot and a few seconds) fill the gaps at the end.
	if [ "$t" = auto ] || [ -n "${refused[$a/$k/$t]:-}" ]; then short+=("$a/$k/$t"); else long+=("$a/$k/$t"); fi
done; done; done
for c in "${long[@]}" "${short[@]}"; do
	[ "${VM_REPORT_ONLY:-0}" = 1 ] && break
	while [ "$(jobs -rp | wc -l)" -ge "$njobs" ]; do wait -n; done
	IFS=/ read -r a k t <<<"$c"
	echo "matrix: $a/$k/$t ... (log: $logdir/$a-$k-$t.log)"
	run_cell "$a" "$k" "$t" &
	sleep 1 # stagger the boots: go test links and packs the initramfs
done
wait
for c in "${cells[@]}"; do
	IFS=/ read -r a k t <<<"$c"
	log=$logdir/$a-$k-$t.log
	rc=$(cat "$log.rc" 2>/dev/null || echo 125)
	secs[$c]=$(cat "$log.secs" 2>/dev/null || echo "?")
	IFS=$'\t' read -r st d < <(summarize "$log" "$rc" "${refused[$c]:-}")
	status[$c]=$st detail[$c]=$d
	case $st in pass) npass=$((npass + 1)) ;; skip) nskip=$((nskip + 1)) ;; refused) nref=$((nref + 1)) ;; *) nfail=$((nfail + 1)) ;; esac
	echo "matrix: $c: $st${d:+ ($d)} in ${secs[$c]} s"
	if [ "$st" = fail ]; then
		echo "----- $log (last 150 lines)"; tail -n 150 "$log"; echo "-----"
	fi
done

cell() {
	local c=${status[$1]}
	if [ "$c" = refused ]; then c="refused by the kernel (expected)"
	elif [ -n "${detail[$1]}" ]; then c+=" (${detail[$1]})"; fi
	printf '%s' "$c"
}
kinfo() { # arch/series -> "package version (suite)"
	local env
	env=$(dirname "${kimg[$1]}")
	while [ "$env" != / ] && [ ! -f "$env/synq-kernel.env" ]; do env=$(dirname "$env"); done
	(. "$env/synq-kernel.env" 2>/dev/null && echo "linux-image-$ABI $VERSION ($SUITE)") || echo "?"
}
total="total $(elapsed "$T0") s"
[ "${VM_REPORT_ONLY:-0}" = 1 ] && total="made from the logs in $logdir${VM_REPORT_TOTAL:+ of a run that took $VM_REPORT_TOTAL}"
accels=$(for a in "${arches[@]}"; do printf '%s %s, ' "$a" "${accel[$a]^^}"; done)

echo
echo "VM test matrix (go test -run '$run' ${pkgs[*]}; auto: ./tracer -run '^TestKernelTier(Auto|Events)\$'), $njobs cells at a time, $total"
{
	printf '%s\t%s\t%s' arch kernel package
	for t in "${tiers[@]}"; do printf '\t%s' "$t"; done
	echo
	for a in "${arches[@]}"; do
		for k in "${kernels[@]}"; do
			printf '%s\t%s\t%s' "$a" "$k" "$(kinfo "$a/$k")"
			for t in "${tiers[@]}"; do printf '\t%s [%ss]' "$(cell "$a/$k/$t")" "${secs[$a/$k/$t]}"; done
			echo
		done
	done
} | awk -F'\t' '{ for (i = 1; i <= NF; i++) { c[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) } if (NF > m) m = NF }
	END { for (r = 1; r <= NR; r++) { l = ""; for (i = 1; i <= m; i++) l = l sprintf("%-" w[i] "s  ", c[r, i]); sub(/ +$/, "", l); print l } }'

mkdir -p "$(dirname "$out")"
{
	echo "# Kernel test matrix"
	echo
	echo "Generated $(date -u '+%Y-%m-%d %H:%M UTC') by \`vm/matrix.sh\`: \`go test -run '$run' ${pkgs[*]}\`"
	echo "in a QEMU VM per cell (${accels%, }), SYNQ_TEST_TIER=<tier>; the auto column runs"
	echo "\`-run '^TestKernelTier(Auto|Events)\$' ./tracer/\` with SYNQ_TEST_TIER=auto. Expected refusals: \`vm/refusals\`."
	echo "Host kernel $(uname -r), $(nproc) CPUs, $njobs cells at a time; cell times in brackets; $total."
	echo
	printf '| arch | kernel | package |'; for t in "${tiers[@]}"; do printf ' %s |' "$t"; done; echo
	printf '|---|---|---|'; for t in "${tiers[@]}"; do printf -- '---|'; done; echo
	for a in "${arches[@]}"; do
		for k in "${kernels[@]}"; do
			printf '| %s | %s | %s |' "$a" "$k" "$(kinfo "$a/$k")"
			for t in "${tiers[@]}"; do printf ' %s [%ss] |' "$(cell "$a/$k/$t" | sed 's/|/\\|/g')" "${secs[$a/$k/$t]}"; done
			echo
		done
	done
} >"$out"
echo "matrix: wrote $out"
echo "matrix: $npass passed, $nref refused by the kernel (expected), $nfail failed, $nskip skipped"
[ "$nfail" = 0 ]
