package tracer

import (
	"bufio"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
)

// symRange is [lo, hi) of a kernel text symbol; zero when unknown.
type symRange struct{ lo, hi uint64 }

// textRanges finds the address ranges of the named functions in kallsyms: a
// function ends where the next symbol starts. Addresses read as zero without
// CAP_SYSLOG (kptr_restrict); the ranges are then unknown.
func textRanges(path string, names ...string) (map[string]symRange, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	var addrs []uint64
	found := map[string]uint64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 {
			continue
		}
		a, err := strconv.ParseUint(fields[0], 16, 64)
		if err != nil || a == 0 {
			continue
		}
		addrs = append(addrs, a)
		if want[fields[2]] && (fields[1] == "T" || fields[1] == "t") && len(fields) == 3 {
			found[fields[2]] = a
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
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
			return out, fmt.Errorf("%s: no address for %s", path, n)
		}
	}
	return out, nil
}
