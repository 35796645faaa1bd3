package demo

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/synq-trace/synq/internal/kerneltest"
	"github.com/synq-trace/synq/internal/netlab"
)

// synRecvRetrans returns, per local port, the highest SYN-ACK retransmit
// count among request sockets (SYN_RECV rows of /proc/net/tcp, whose
// "retrnsmt" column is req->num_timeout).
func synRecvRetrans(ns *netlab.Netns) (map[uint16]int, error) {
	var b []byte
	err := ns.Do(func() error {
		var err error
		b, err = os.ReadFile("/proc/thread-self/net/tcp")
		return err
	})
	if err != nil {
		return nil, err
	}
	out := map[uint16]int{}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 7 || f[3] != "03" {
			continue
		}
		_, portHex, _ := strings.Cut(f[1], ":")
		port, err1 := strconv.ParseUint(portHex, 16, 16)
		n, err2 := strconv.ParseUint(f[6], 16, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		out[uint16(port)] = max(out[uint16(port)], int(n))
	}
	return out, nil
}

func TestKernelDemo(t *testing.T) {
	kerneltest.Root(t)
	// Not the default name: a synq demo running on this machine must
	// survive the test.
	name := fmt.Sprintf("synq-demo-test-%d", os.Getpid())
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()

	start := time.Now()
	d, err := Run(ctx, Options{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ns := d.Netns()
	c0, err := ns.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if p := d.Ports(); p.Slow != 8080 || p.Healthy != 8081 {
		t.Errorf("ports %+v, want 8080 and 8081", p)
	}

	synackRetrans := map[uint16]int{}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
loop:
	for {
		select {
		case <-d.Done():
			break loop
		case <-tick.C:
			r, err := synRecvRetrans(ns)
			if err != nil {
				t.Fatal(err)
			}
			for p, n := range r {
				synackRetrans[p] = max(synackRetrans[p], n)
			}
		}
	}

	stopped := time.Since(start)
	c1, err := ns.Counters()
	if err != nil {
		t.Fatal(err)
	}
	delta := c1.Sub(c0)
	st := d.Stats()
	t.Logf("stopped %v after start; stats %+v", stopped.Round(time.Millisecond), st)
	t.Logf("netns: ListenOverflows +%d ListenDrops +%d TCPSynRetrans +%d; max SYN-ACK retransmits seen per port %v",
		delta["TcpExt.ListenOverflows"], delta["TcpExt.ListenDrops"], delta["TcpExt.TCPSynRetrans"], synackRetrans)

	if delta["TcpExt.ListenOverflows"] == 0 {
		t.Error("no accept-queue overflow in 3s")
	}
	if st.SlowAccepts == 0 || st.HealthyAccepts == 0 {
		t.Errorf("accepts: slow %d, healthy %d; want both > 0", st.SlowAccepts, st.HealthyAccepts)
	}
	if delta["TcpExt.TCPSynRetrans"] == 0 {
		t.Error("no SYN or SYN-ACK retransmits in 3s")
	}
	if synackRetrans[8081] != 0 {
		t.Errorf("healthy listener retransmitted SYN-ACKs (%d)", synackRetrans[8081])
	}

	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("closed %v after start", time.Since(start).Round(time.Millisecond))
	if _, err := os.Stat(netlab.NetnsDir + "/" + name); !os.IsNotExist(err) {
		t.Errorf("demo netns still present after Close: %v", err)
	}
}
