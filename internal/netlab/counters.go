package netlab

import (
	"fmt"
	"os"
	"runtime"

	"github.com/synq-trace/synq/internal/netstat"
)

// Counters are a namespace's SNMP MIB counters keyed "Group.Name", e.g.
// "TcpExt.ListenOverflows", "TcpExt.ListenDrops", "TcpExt.TCPSynRetrans",
// "Tcp.RetransSegs".
type Counters map[string]uint64

// Sub returns c - old for every key in c (counters only grow; a key missing
// from old counts from zero).
func (c Counters) Sub(old Counters) Counters {
	d := make(Counters, len(c))
	for k, v := range c {
		d[k] = v - old[k]
	}
	return d
}

// Counters reads the namespace's /proc/net/netstat and /proc/net/snmp.
func (n *Netns) Counters() (Counters, error) {
	var c Counters
	err := n.Do(func() error {
		var err error
		c, err = ReadCounters()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("counters of %s: %w", n, err)
	}
	return c, nil
}

// ReadCounters reads the MIB counters of the calling thread's network
// namespace: the host's, unless called inside Netns.Do.
//
// It reads /proc/thread-self/net, not /proc/self/net: the latter follows
// the namespace of the thread-group leader, not of this thread.
func ReadCounters() (Counters, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c := make(Counters, 256)
	for _, f := range []string{"/proc/thread-self/net/netstat", "/proc/thread-self/net/snmp"} {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		if err := parseMIB(b, c); err != nil {
			return nil, fmt.Errorf("parse %s: %w", f, err)
		}
	}
	return c, nil
}

// parseMIB parses net/netstat or net/snmp (netstat.ParseTable) into c.
// Tcp.MaxConn is -1: it is kept as its two's complement.
func parseMIB(b []byte, c Counters) error {
	s := make(netstat.Snapshot, 256)
	if err := netstat.ParseTable(b, s); err != nil {
		return err
	}
	for k, v := range s {
		c[k] = uint64(v)
	}
	return nil
}
