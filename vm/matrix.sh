#!/bin/bash
# usage: vm/matrix.sh
# Runs the kernel tests of VM_PKGS in a VM for every kernel x tier, prints a
# kernel x tier table of pass / fail / skip (reason), writes it as markdown and
# exits non-zero if any cell failed. Each cell is
#   SYNQ_TEST_TIER=<tier> SYNQ_KERNEL_SERIES=<kernel> CGO_ENABLED=0 \
#     go test -exec vm/go-test-exec.sh -count=1 -v $VM_GOTEST_FLAGS $VM_PKGS -run "$VM_RUN"
# run from the current directory, with its whole output in $VM_LOGDIR/<kernel>-<tier>.log.
# A cell is "skip" when every test in it skipped (reason: the first skip's
# message), "fail" when go test failed or ran no test at all. A tier the kernel
# refuses fails its cell (SYNQ_TEST_REQUIRE_TIER=1, TestKernelTierEvents): the
# Debian kernels have every tier. SYNQ_TEST_REQUIRE_TIER= (empty) makes it a
# skip, for a kernel built without kprobes or BPF trampolines.
# Env: KERNELS        series to test ("5.10 6.1 6.12 7.2"), fetched by vm/fetch-kernel.sh
#      TIERS          "fentry kprobe tracepoint"
#      VM_PKGS        packages ("./tracer/...")
#      VM_RUN         -run pattern ("Kernel": tests that need root are named
#                     TestKernel*, see internal/kerneltest)
#      VM_GOTEST_FLAGS  extra go test flags ("-p 1 -timeout 30m": one VM at a time, so
#                     timing-sensitive tests don't compete for the 2 cores)
#      VM_LOGDIR      ($SYNQ_CACHE/vmlogs)   VM_MATRIX_OUT  (testdata/matrix.md)
#      and those of vm/go-test-exec.sh (VM_MODULES, VM_FILES, VM_MEM, ...).
#      VM_ACCEL       tcg | kvm; unset: chosen once for the run (vm_choose_accel
#                     in lib.sh: KVM only if a probe VM boots under it)
set -uo pipefail
. "$(dirname "$(realpath "$0")")/lib.sh"

read -ra kernels <<<"${KERNELS:-5.10 6.1 6.12 7.2}"
read -ra tiers <<<"${TIERS:-fentry kprobe tracepoint}"
read -ra pkgs <<<"${VM_PKGS:-./tracer/...}"
read -ra gflags <<<"${VM_GOTEST_FLAGS--p 1 -timeout 30m}"
run=${VM_RUN:-Kernel}
logdir=${VM_LOGDIR:-$SYNQ_CACHE/vmlogs}
out=${VM_MATRIX_OUT:-testdata/matrix.md}
mkdir -p "$logdir"
"$VM_DIR/deps.sh" || vm_die "cannot install the VM dependencies"
T0=$EPOCHREALTIME

# Kernels: not getting one is an error, never a skip.
declare -A kimg
kout=$("$VM_DIR/fetch-kernel.sh" "${kernels[@]}") || vm_die "fetching kernels ${kernels[*]} failed"
while read -r s p; do kimg[$s]=$p; done <<<"$kout"
for k in "${kernels[@]}"; do [ -n "${kimg[$k]:-}" ] || vm_die "kernel $k was not resolved"; done

export CGO_ENABLED=0
# Build once up front (all cores): a build error fails here, not in every cell.
echo "matrix: building ${pkgs[*]}"
if ! bout=$(go test -count=1 -run '^$' -exec /bin/true "${pkgs[@]}" 2>&1); then
	printf '%s\n' "$bout"; vm_die "go test build failed"
fi
echo "matrix: kernels fetched and tests built in $(elapsed "$T0") s"
# One accelerator for the whole run: a failed KVM probe costs its timeout once
# here, never in a cell (the cells inherit VM_ACCEL).
vm_choose_accel "${kimg[${kernels[0]}]}"

# summarize LOG RC -> "status<TAB>detail"
summarize() {
	awk -v rc="$2" '
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
		if (cur != "") last[cur] = msg      # streamed (-v) logs: reason printed before it
		next
	}
	/^[^ \t]/ { want = 0 }
	/go-test-exec: the VM failed/ { vmfail = 1 }
	/^(FAIL|ok) .*\[build failed\]|^# / { buildfail = 1 }
	END {
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
npass=0 nfail=0 nskip=0
for k in "${kernels[@]}"; do
	for t in "${tiers[@]}"; do
		log=$logdir/$k-$t.log
		echo "matrix: $k/$t ... (log: $log)"
		t0=$EPOCHREALTIME
		(
			export SYNQ_TEST_TIER=$t SYNQ_KERNEL_SERIES=$k VM_KERNEL=${kimg[$k]} VM_VERBOSE=1
			export SYNQ_TEST_REQUIRE_TIER=${SYNQ_TEST_REQUIRE_TIER-1}
			echo "# SYNQ_TEST_TIER=$t SYNQ_KERNEL_SERIES=$k SYNQ_TEST_REQUIRE_TIER=$SYNQ_TEST_REQUIRE_TIER VM_KERNEL=${kimg[$k]}"
			echo "# go test -exec $VM_DIR/go-test-exec.sh -count=1 -v ${gflags[*]} ${pkgs[*]} -run $run"
			go test -exec "$VM_DIR/go-test-exec.sh" -count=1 -v "${gflags[@]}" "${pkgs[@]}" -run "$run"
		) >"$log" 2>&1
		rc=$?
		secs[$k/$t]=$(elapsed "$t0")
		IFS=$'\t' read -r st d < <(summarize "$log" "$rc")
		status[$k/$t]=$st detail[$k/$t]=$d
		case $st in pass) npass=$((npass + 1)) ;; skip) nskip=$((nskip + 1)) ;; *) nfail=$((nfail + 1)) ;; esac
		echo "matrix: $k/$t: $st${d:+ ($d)} in ${secs[$k/$t]} s"
		if [ "$st" = fail ]; then
			echo "----- $log (last 150 lines)"; tail -n 150 "$log"; echo "-----"
		fi
	done
done

cell() { local c=${status[$1]}; [ -n "${detail[$1]}" ] && c+=" (${detail[$1]})"; printf '%s' "$c"; }
kinfo() { # series -> "package version (suite)"
	local env
	env=$(dirname "${kimg[$1]}")
	while [ "$env" != / ] && [ ! -f "$env/synq-kernel.env" ]; do env=$(dirname "$env"); done
	(. "$env/synq-kernel.env" 2>/dev/null && echo "linux-image-$ABI $VERSION ($SUITE)") || echo "?"
}

echo
echo "VM test matrix (go test -run '$run' ${pkgs[*]}), total $(elapsed "$T0") s"
{
	printf '%s\t%s' kernel package
	for t in "${tiers[@]}"; do printf '\t%s' "$t"; done
	echo
	for k in "${kernels[@]}"; do
		printf '%s\t%s' "$k" "$(kinfo "$k")"
		for t in "${tiers[@]}"; do printf '\t%s [%ss]' "$(cell "$k/$t")" "${secs[$k/$t]}"; done
		echo
	done
} | awk -F'\t' '{ for (i = 1; i <= NF; i++) { c[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) } if (NF > m) m = NF }
	END { for (r = 1; r <= NR; r++) { l = ""; for (i = 1; i <= m; i++) l = l sprintf("%-" w[i] "s  ", c[r, i]); sub(/ +$/, "", l); print l } }'

mkdir -p "$(dirname "$out")"
{
	echo "# Kernel test matrix"
	echo
	echo "Generated $(date -u '+%Y-%m-%d %H:%M UTC') by \`vm/matrix.sh\`: \`go test -run '$run' ${pkgs[*]}\`"
	echo "in a QEMU (${VM_ACCEL^^}) VM per cell, SYNQ_TEST_TIER=<tier>. Host kernel $(uname -r)."
	echo
	printf '| kernel | package |'; for t in "${tiers[@]}"; do printf ' %s |' "$t"; done; echo
	printf '|---|---|'; for t in "${tiers[@]}"; do printf -- '---|'; done; echo
	for k in "${kernels[@]}"; do
		printf '| %s | %s |' "$k" "$(kinfo "$k")"
		for t in "${tiers[@]}"; do printf ' %s |' "$(cell "$k/$t" | sed 's/|/\\|/g')"; done
		echo
	done
} >"$out"
echo "matrix: wrote $out"
echo "matrix: $npass passed, $nfail failed, $nskip skipped"
[ "$nfail" = 0 ]
