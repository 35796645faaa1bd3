package netlab

import (
	"fmt"
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
// namespace: the host's, unless called inside Netns.Do. It parses with
// internal/netstat, the one /proc/net counter parser; Tcp.MaxConn (-1) is
// kept as its two's complement.
func ReadCounters() (Counters, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	s, err := netstat.ReadMIB()
	if err != nil {
		return nil, err
	}
	c := make(Counters, len(s))
	for k, v := range s {
		c[k] = uint64(v)
	}
	return c, nil
}
