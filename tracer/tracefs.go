package tracer

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// ensureTracefs mounts tracefs where the kernel offers it but nobody mounted
// it (minimal hosts, containers, test VMs): kprobes and classic tracepoints
// are created through it.
func ensureTracefs() string {
	for _, p := range []string{"/sys/kernel/tracing/events", "/sys/kernel/debug/tracing/events"} {
		if _, err := os.Stat(p); err == nil {
			return ""
		}
	}
	if err := unix.Mount("tracefs", "/sys/kernel/tracing", "tracefs", 0, ""); err != nil {
		return "tracefs is not mounted and mounting it at /sys/kernel/tracing failed: " + err.Error()
	}
	return "mounted tracefs at /sys/kernel/tracing"
}

var errNoKprobes = errors.New("this kernel has no kprobes (CONFIG_KPROBES is off: no kprobe_events in tracefs)")

func haveKprobes() bool {
	for _, p := range []string{"/sys/kernel/tracing/kprobe_events", "/sys/kernel/debug/tracing/kprobe_events"} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}
