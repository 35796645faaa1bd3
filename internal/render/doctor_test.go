package render

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/synq-trace/synq/internal/aggregate"
	"github.com/synq-trace/synq/internal/doctor"
	"github.com/synq-trace/synq/tracer"
)

// One finding with its evidence beside the kernel's counter, one healthy
// line; JSON keeps null where synq cannot see.
func TestDoctorRender(t *testing.T) {
	z := func(v uint64) *uint64 { return &v }
	n := func(v int64) *int64 { return &v }
	f := &aggregate.Frame{Interval: 10 * time.Second, Tier: tracer.TierTracepoint, Kernel: "6.18", Rows: []aggregate.Row{
		{Endpoint: tracer.Endpoint{Netns: 7, Addr: netip.MustParseAddr("127.0.0.1"), Port: 8080}, NetnsName: "web",
			Owners:  []aggregate.Owner{{PID: 5, Comm: "nginx"}},
			Accepts: 34, AckOverflow: 30, AcceptQueueFull: z(47), Drops: 77, SynDerived: z(47), SynQueueFull: z(0), SynOther: z(0),
			SettledBy: "the only listener that dropped", AcceptQueue: aggregate.Queue{Peak: 17, Max: 16}},
		{Endpoint: tracer.Endpoint{Netns: 7, Addr: netip.MustParseAddr("127.0.0.1"), Port: 9090}, NetnsName: "web", Accepts: 3,
			AcceptQueue: aggregate.Queue{Max: 128}},
	}}
	in := doctor.Input{Frame: f, Netns: map[uint32]*doctor.Netns{7: {Inode: 7, Name: "web", Sysctls: doctor.Sysctls{Somaxconn: n(4096)},
		Delta: map[string]int64{"TcpExt.ListenOverflows": 77, "TcpExt.ListenDrops": 77, "TcpExt.TCPReqQFullDrop": 0}}},
		Procs: map[int]*doctor.Proc{5: {PID: 5, Comm: "nginx", Exe: "/usr/sbin/nginx", State: "S"}}}
	r := &DoctorReport{Frame: f, Findings: doctor.Diagnose(in), Netns: in.Netns}
	var b bytes.Buffer
	if err := WriteDoctor(&b, Text, r); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"synq doctor: 10s observed on Linux 6.18 (tracepoint tier): 2 listeners, 1 finding\n",
		"CRITICAL  127.0.0.1:8080 (netns web (net:[7]), nginx[5]): the application's listen() backlog is the limit",
		"dropped on a full accept queue (30 final ACKs: half-open connections, 47 SYNs): synq 77 | kernel TcpExt.ListenOverflows +77 (netns, same window)",
		"limit:    the backlog the application passed to listen(): 16, below net.core.somaxconn 4096",
		"`listen 8080 backlog=4096;`",
		"inferred: SYN-side drops by reason are not visible per listener on the tracepoint tier",
		"OK        127.0.0.1:9090 (netns web (net:[7])): nothing seen: 3 accepted, 0 dropped, accept queue peak 0 of 128\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
	b.Reset()
	if err := WriteDoctor(&b, JSON, r); err != nil {
		t.Fatal(err)
	}
	var j DoctorJSON
	if err := json.Unmarshal(b.Bytes(), &j); err != nil {
		t.Fatal(err)
	}
	if !j.Found || len(j.Findings) != 2 || j.Findings[0].Kind != doctor.KindAppBacklog || j.Findings[1].Severity != "ok" {
		t.Errorf("JSON: %s", b.String())
	}
	if !strings.Contains(b.String(), `"what":"accept queue now 0, peak 17, limit 16 (sk_max_ack_backlog)","synq":null,"kernel":null`) {
		t.Errorf("JSON evidence without numbers must carry nulls: %s", b.String())
	}
}
