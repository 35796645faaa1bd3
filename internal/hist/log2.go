package hist

import (
	"bufio"
	"fmt"
	"io"
	"math/bits"
	"strings"
)

// Log2 counts values in power-of-two slots the way bcc's tools do: slot 0
// holds 0 and 1, slot k ≥ 1 holds [2^k, 2^(k+1)−1].
type Log2 struct {
	slots [64]uint64
}

// Slot is the slot of v.
func Slot(v uint64) int {
	if v <= 1 {
		return 0
	}
	return bits.Len64(v) - 1
}

// SlotBounds is the inclusive value range of slot k.
func SlotBounds(k int) (lo, hi uint64) {
	if k == 0 {
		return 0, 1
	}
	return 1 << k, 1<<k - 1 + 1<<k
}

// Record adds one value.
func (l *Log2) Record(v uint64) { l.slots[Slot(v)]++ }

// RecordN adds n occurrences of v.
func (l *Log2) RecordN(v, n uint64) { l.slots[Slot(v)] += n }

// Merge adds o's counts.
func (l *Log2) Merge(o *Log2) {
	for i, c := range o.slots {
		l.slots[i] += c
	}
}

// Count is the number of values recorded.
func (l *Log2) Count() uint64 {
	var n uint64
	for _, c := range l.slots {
		n += c
	}
	return n
}

// Bucket is one slot: values From through To (inclusive).
type Bucket struct {
	From, To uint64
	Count    uint64
}

// Buckets lists the slots from the first non-empty one to the last, empty
// slots in between included (nil when nothing was recorded).
func (l *Log2) Buckets() []Bucket {
	first, last := -1, -1
	for i, c := range l.slots {
		if c > 0 {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if first < 0 {
		return nil
	}
	out := make([]Bucket, 0, last-first+1)
	for k := first; k <= last; k++ {
		lo, hi := SlotBounds(k)
		out = append(out, Bucket{From: lo, To: hi, Count: l.slots[k]})
	}
	return out
}

// Write prints the distribution like bcc's print_log2_hist:
//
//	usecs               : count    distribution
//	 2048 -> 4095       : 12       |*****                                   |
//
// unit names the values ("usecs", "depth"). Leading empty slots are left out;
// nothing is printed for an empty histogram.
func (l *Log2) Write(w io.Writer, unit string) error {
	bs := l.Buckets()
	if len(bs) == 0 {
		return nil
	}
	var peak uint64
	for _, b := range bs {
		peak = max(peak, b.Count)
	}
	// bcc widens the columns for values past 2^32.
	stars, lead, label, width := 40, 5, 19, 10
	if Slot(bs[len(bs)-1].To) > 32 {
		stars, lead, label, width = 20, 15, 29, 20
	}
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "%*s%-*s : count    distribution\n", lead, "", label, unit)
	for _, b := range bs {
		n := int(b.Count * uint64(stars) / peak)
		fmt.Fprintf(bw, "%*d -> %-*d : %-8d |%s%s|\n", width, b.From, width, b.To, b.Count,
			strings.Repeat("*", n), strings.Repeat(" ", stars-n))
	}
	return bw.Flush()
}
