package tracer

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"unsafe"
)

// symRange is [lo, hi) of a kernel text symbol; zero when unknown.
type symRange struct{ lo, hi uint64 }

// textRanges finds the address ranges of the named symbols in kallsyms (text
// or data): a symbol ends where the next one starts. Addresses read as zero without
// CAP_SYSLOG (kptr_restrict); the ranges are then unknown.
func textRanges(path string, names ...string) (map[string]symRange, error) {
	r, _, err := readKallsyms(path, names, nil)
	return r, err
}

// readKallsyms is textRanges of names, plus which of funcs kallsyms lists as
// functions (text symbols, of the kernel or a module, whatever their address
// reads as): the names a kprobe can attach to.
func readKallsyms(path string, names, funcs []string) (map[string]symRange, map[string]bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	want, wantFn := map[string]bool{}, map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	for _, n := range funcs {
		wantFn[n] = true
	}
	fns := map[string]bool{}
	var addrs []uint64
	found := map[string]uint64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "ADDR TYPE NAME" or "ADDR TYPE NAME\t[module]"; ~200k lines, so no
		// per-line allocation.
		line := sc.Bytes()
		sp := bytes.IndexByte(line, ' ')
		if sp < 0 || len(line) < sp+4 || line[sp+2] != ' ' {
			continue
		}
		typ, name := line[sp+1], line[sp+3:]
		if typ == 'T' || typ == 't' {
			fn := name
			if i := bytes.IndexByte(fn, '\t'); i >= 0 { // "NAME\t[module]"
				fn = fn[:i]
			}
			if wantFn[unsafeString(fn)] {
				fns[string(fn)] = true
			}
		}
		a, err := strconv.ParseUint(unsafeString(line[:sp]), 16, 64)
		if err != nil || a == 0 {
			continue
		}
		addrs = append(addrs, a)
		if strings.IndexByte("TtDdBbRr", typ) >= 0 && !bytes.ContainsAny(name, " \t") && want[string(name)] {
			found[string(name)] = a
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, err
	}
	sort.Slice(addrs, func(i, j int) bool { return addrs[i] < addrs[j] })
	out := map[string]symRange{}
	for n, a := range found {
		i := sort.Search(len(addrs), func(i int) bool { return addrs[i] > a })
		if i == len(addrs) {
			continue
		}
		out[n] = symRange{a, addrs[i]}
	}
	for _, n := range names {
		if _, ok := out[n]; !ok {
			return out, fns, fmt.Errorf("%s: no address for %s", path, n)
		}
	}
	return out, fns, nil
}

// kallsymsNames are the symbols Open looks up: /proc/kallsyms (~200k lines)
// is read once per Open, not once per question.
var kallsymsNames = []string{"tcp_v4_rcv", "tcp_v6_rcv", "tcp_syn_flood_action", "__per_cpu_offset"}

// kprobeFuncs are the optional kprobe targets whose presence Open asks
// kallsyms about (kprobeTarget).
var kprobeFuncs = []string{"tcp_v6_syn_recv_sock", "cookie_v6_init_sequence"}

// symbols are the text ranges of kallsymsNames that kallsyms shows.
func (t *Tracer) symbols() map[string]symRange {
	if t.syms == nil {
		path := t.cfg.KallsymsPath
		if path == "" {
			path = "/proc/kallsyms"
		}
		t.syms, t.kfuncs, _ = readKallsyms(path, kallsymsNames, kprobeFuncs)
		if t.syms == nil {
			t.syms = map[string]symRange{}
		}
	}
	return t.syms
}

// kprobeTarget: a kprobe can attach to the function (one of kprobeFuncs).
// A kprobe attaches by the name kallsyms lists, so BTF cannot decide it
// alone: Debian's 5.10 arm64 BTF lacks tcp_v6_syn_recv_sock, which its
// kallsyms lists and a kprobe attaches to. Without a readable kallsyms, BTF
// (inBTF) is all there is.
func (t *Tracer) kprobeTarget(name string, inBTF bool) bool {
	t.symbols()
	return inBTF || t.kfuncs[name]
}

// haveSymbol: the function (one of kallsymsNames) exists in kallsyms under
// its own name. BTF alone is not proof: old pahole versions emit BTF for
// functions that the compiler inlined everywhere (tcp_syn_flood_action on
// Debian 5.10 and 6.1), and a program attached to them never runs.
func (t *Tracer) haveSymbol(name string) bool {
	return t.symbols()[name].lo != 0
}

func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
