package render

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/synq-trace/synq/internal/aggregate"
	"github.com/synq-trace/synq/internal/hist"
	"github.com/synq-trace/synq/tracer"
)

// Two SO_REUSEPORT members with the same holders print apart: "#k" after
// the address, each member's accepting worker first with "*", legends said.
func TestTopTextMembers(t *testing.T) {
	ep := tracer.Endpoint{Netns: 7, Addr: netip.MustParseAddr("127.0.0.1"), Port: 8080}
	holders := func(worker int) []aggregate.Owner {
		return []aggregate.Owner{{PID: worker, Comm: "nginx", Accepting: true}, {PID: 100, Comm: "nginx"}, {PID: 101 + 102 - worker, Comm: "nginx"}}
	}
	zero := uint64(0)
	f := &aggregate.Frame{Interval: time.Second, Rows: []aggregate.Row{
		{Endpoint: ep, Inode: 5, Member: 1, Owners: holders(101), SynDerived: &zero},
		{Endpoint: ep, Inode: 6, Member: 2, Owners: holders(102), SynDerived: &zero},
	}}
	text := strings.Join(TopText(f, aggregate.SortDrops, false), "\n")
	for _, want := range []string{"127.0.0.1:8080#1", "127.0.0.1:8080#2", "101/nginx* +2", "102/nginx* +2",
		"LISTENER #k:", "OWNER *:"} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q in:\n%s", want, text)
		}
	}
	f.Rows = f.Rows[:1]
	f.Rows[0].Member, f.Rows[0].Owners = 0, []aggregate.Owner{{PID: 100, Comm: "nginx"}}
	text = strings.Join(TopText(f, aggregate.SortDrops, false), "\n")
	if strings.Contains(text, "#") || strings.Contains(text, "*:") || strings.Contains(text, "nginx*") {
		t.Errorf("a lone listener without accept events got member or acceptor marks:\n%s", text)
	}

	g := &aggregate.Group{Netns: 7, Port: 8080, Addrs: []netip.Addr{ep.Addr}, Listeners: []tracer.ListenerID{1},
		Inodes: []uint64{6}, Member: 2, Owners: holders(102), Latency: hist.New(), LatencyLog: &hist.Log2{}, Depth: hist.New()}
	var b bytes.Buffer
	if err := WriteLatencyText(&b, []*aggregate.Group{g}, aggregate.ByListener); err != nil {
		t.Fatal(err)
	}
	if first, _, _ := strings.Cut(b.String(), "\n"); !strings.HasPrefix(first, "127.0.0.1:8080#2  netns 7") ||
		!strings.Contains(first, "owner 102/nginx* +2 (* seen accepting)") {
		t.Errorf("latency title %q", first)
	}
	if j := NewLatencyJSON(g, aggregate.ByListener); j.Inode != 6 || j.Member != 2 || j.Inodes != nil {
		t.Errorf("latency JSON inode %d member %d inodes %v", j.Inode, j.Member, j.Inodes)
	}
}
