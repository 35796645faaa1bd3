package netstat

import (
	"runtime"
	"testing"
)

// BenchmarkReadMIB is what reading one namespace's counters costs a walk
// that reads them (synq serve reads every walked namespace's at each scrape).
func BenchmarkReadMIB(b *testing.B) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for range b.N {
		if _, err := ReadMIB(); err != nil {
			b.Fatal(err)
		}
	}
}
