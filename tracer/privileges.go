package tracer

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// ErrPrivileges is returned when the process lacks the capabilities to load
// and attach tracing programs.
var ErrPrivileges = errors.New("missing privileges")

const (
	capNetAdmin = 12
	capSysAdmin = 21
	capPerfmon  = 38
	capBPF      = 39
)

func effectiveCaps() (uint64, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return 0, err
	}
	return uint64(data[0].Effective) | uint64(data[1].Effective)<<32, nil
}

// checkPrivileges fails early, with the capability named, instead of letting
// the first BPF syscall fail with a bare EPERM. CAP_SYS_ADMIN covers both on
// kernels before 5.8.
func checkPrivileges() error {
	caps, err := effectiveCaps()
	if err != nil {
		return fmt.Errorf("%w: cannot read capabilities: %v", ErrPrivileges, err)
	}
	has := func(c uint) bool { return caps&(1<<c) != 0 }
	if has(capSysAdmin) {
		return nil
	}
	var missing []string
	if !has(capBPF) {
		missing = append(missing, "CAP_BPF")
	}
	if !has(capPerfmon) {
		missing = append(missing, "CAP_PERFMON")
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("%w: synq needs CAP_BPF and CAP_PERFMON (or root); missing %v", ErrPrivileges, missing)
}
