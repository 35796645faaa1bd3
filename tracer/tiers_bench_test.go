package tracer_test

import (
	"context"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/synq-trace/synq/internal/kerneltest"
	"github.com/synq-trace/synq/internal/netlab"
	"github.com/synq-trace/synq/tracer"
)

// BenchmarkKernelTiers churns loopback connections in a private netns under
// each attach tier the kernel allows, in one run, and reports the kernel
// time synq's programs took per connection (kernel.bpf_stats_enabled) and
// per run of each program. Inside a TCG VM (make vmbench) the absolute
// numbers are emulated time: only the tiers' costs relative to each other
// on the same kernel mean something.
func BenchmarkKernelTiers(b *testing.B) {
	kerneltest.Root(b)
	const stats = "/proc/sys/kernel/bpf_stats_enabled"
	old, err := os.ReadFile(stats)
	if err != nil {
		b.Skip(err)
	}
	if err := os.WriteFile(stats, []byte("1"), 0); err != nil {
		b.Skip(err)
	}
	defer os.WriteFile(stats, old, 0)

	ns := kerneltest.Netns(b, nil)
	l := kerneltest.Listen(b, ns, "tcp4", "127.0.0.1:0", 4096)
	srv := netlab.Serve(l, netlab.ServerConfig{})
	defer srv.Stop()

	for _, tier := range tracer.Tiers {
		b.Run(string(tier), func(b *testing.B) {
			tr, err := tracer.Open(tracer.Config{Tier: tier, Netns: uint32(ns.Inode()),
				WakeupBytes: 64 << 10, PollInterval: 100 * time.Millisecond})
			if err != nil {
				b.Skip(err)
			}
			defer tr.Close()
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- tr.Read(ctx, func(*tracer.Event) {}) }()
			before := progRuntime(tr)
			b.ResetTimer()
			conns := 0
			for conns < b.N {
				conns += ns.Churn(context.Background(), l.String(), 4, 100*time.Millisecond)
			}
			b.StopTimer()
			after := progRuntime(tr)
			cancel()
			<-done
			var total time.Duration
			names := make([]string, 0, len(after))
			for name := range after {
				names = append(names, name)
			}
			sort.Strings(names)
			for _, name := range names {
				d := after[name].ns - before[name].ns
				runs := after[name].runs - before[name].runs
				total += d
				if runs > 0 && !strings.HasPrefix(name, "iter") {
					b.ReportMetric(float64(d.Nanoseconds())/float64(runs), name+"-ns/run")
				}
			}
			b.ReportMetric(float64(total.Nanoseconds())/float64(conns), "kernel-ns/conn")
		})
	}
}

type runtimeNs struct {
	runs uint64
	ns   time.Duration
}

func progRuntime(tr *tracer.Tracer) map[string]runtimeNs {
	out := map[string]runtimeNs{}
	for name, p := range tr.Programs() {
		if st, err := p.Stats(); err == nil {
			out[name] = runtimeNs{st.RunCount, st.Runtime}
		}
	}
	return out
}
