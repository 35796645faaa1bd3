package netlab

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
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

// parseMIB parses the "Group: name name ...\nGroup: value value ..." line
// pairs of /proc/net/netstat and /proc/net/snmp.
func parseMIB(b []byte, c Counters) error {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		names := strings.Fields(sc.Text())
		if !sc.Scan() {
			return fmt.Errorf("header %q without values", strings.Join(names, " "))
		}
		values := strings.Fields(sc.Text())
		if len(names) == 0 || len(names) != len(values) || names[0] != values[0] {
			return fmt.Errorf("mismatched lines %q / %q", strings.Join(names, " "), strings.Join(values, " "))
		}
		group := strings.TrimSuffix(names[0], ":")
		for i := 1; i < len(names); i++ {
			// Tcp.MaxConn is -1; keep it as its two's complement rather
			// than failing the whole read.
			v, err := strconv.ParseInt(values[i], 10, 64)
			if err != nil {
				u, uerr := strconv.ParseUint(values[i], 10, 64)
				if uerr != nil {
					return fmt.Errorf("%s.%s: %w", group, names[i], err)
				}
				v = int64(u)
			}
			c[group+"."+names[i]] = uint64(v)
		}
	}
	return sc.Err()
}
