// Package netnstest gives tests a private, named network namespace with
// loopback up, removed when the test ends. It needs root (CAP_SYS_ADMIN):
// without it the test is skipped with the reason.
package netnstest

import (
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"testing"

	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/synq-trace/synq/internal/netns"
)

var seq atomic.Int64

// New creates /run/netns/synq-test-PID-N, brings lo up in it and returns
// it. The namespace is deleted in t.Cleanup.
func New(t testing.TB) netns.NS {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace (run the tests as root)")
	}
	name := fmt.Sprintf("synq-test-%d-%d", os.Getpid(), seq.Add(1))
	if err := create(name); err != nil {
		t.Fatalf("create netns %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := vnetns.DeleteNamed(name); err != nil {
			t.Errorf("delete netns %s: %v", name, err)
		}
	})
	ns, err := netns.Resolve(name)
	if err != nil {
		t.Fatalf("resolve new netns %s: %v", name, err)
	}
	if err := ns.Do(loUp); err != nil {
		t.Fatalf("bring lo up in %s: %v", name, err)
	}
	return ns
}

// create runs vnetns.NewNamed, which unshares the calling thread, on a
// thread of its own that is then moved back.
func create(name string) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := vnetns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		h, err := vnetns.NewNamed(name)
		if err != nil {
			// unshare may have succeeded before the mount failed.
			if serr := vnetns.Set(orig); serr == nil {
				runtime.UnlockOSThread()
			}
			errc <- err
			return
		}
		h.Close()
		if err := vnetns.Set(orig); err != nil {
			// Thread stays locked: Go discards it with this goroutine.
			errc <- fmt.Errorf("return to original netns: %w", err)
			return
		}
		runtime.UnlockOSThread()
		errc <- nil
	}()
	return <-errc
}

// loUp sets IFF_UP on lo in the calling thread's namespace.
func loUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("SIOCGIFFLAGS lo: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("SIOCSIFFLAGS lo: %w", err)
	}
	return nil
}
