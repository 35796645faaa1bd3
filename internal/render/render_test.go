package render

import (
	"bytes"
	"encoding/json"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/synq-trace/synq/internal/aggregate"
	"github.com/synq-trace/synq/internal/identity"
	"github.com/synq-trace/synq/tracer"
)

func testEvents() []tracer.Event {
	at := time.Date(2026, 11, 24, 3, 37, 19, 780445000, time.Local)
	v4 := tracer.Endpoint{Netns: 4026532246, Addr: netip.MustParseAddr("127.0.0.1"), Port: 8081}
	v6 := tracer.Endpoint{Netns: 4026531833, Addr: netip.MustParseAddr("::1"), Port: 443}
	peer := netip.MustParseAddrPort("127.0.0.1:50460")
	return []tracer.Event{
		{Time: at, Kind: tracer.KindEnqueue, Endpoint: v4, Peer: peer, QueueKnown: true, AcceptQueueLen: 1, AcceptQueueMax: 128},
		{Time: at, Kind: tracer.KindAccept, Endpoint: v4, Peer: peer, QueueKnown: true, AcceptQueueMax: 128,
			Latency: 110400 * time.Nanosecond, LatencyKnown: true, PID: 12185, Comm: tracer.MakeComm("server")},
		{Time: at, Kind: tracer.KindSynDrop, Reason: tracer.ReasonAcceptQueueFull, Endpoint: v6, QueueKnown: true,
			AcceptQueueLen: 4097, AcceptQueueMax: 4096, SynQueueLen: 12},
		{Time: at, Kind: tracer.KindEnqueue, Endpoint: v4, Peer: peer}, // no queue depths (tracepoint tier before 6.6)
		{Time: at, Kind: tracer.KindAccept, Endpoint: v4, Peer: peer, PID: 1, Comm: tracer.MakeComm("init")},
	}
}

// written is what an EventWriter of format f writes for evs, header
// included, line by line.
func written(t *testing.T, f Format, evs []tracer.Event) []string {
	t.Helper()
	var b bytes.Buffer
	ew := NewEventWriter(&b, f)
	if err := ew.Header(); err != nil {
		t.Fatal(err)
	}
	for i := range evs {
		if err := ew.Write(&evs[i]); err != nil {
			t.Fatal(err)
		}
	}
	return strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
}

// The text format is one aligned line per event: every column starts where
// its title does, and no line ends in blanks.
func TestTextAligned(t *testing.T) {
	evs := testEvents()
	lines := written(t, Text, evs)
	if len(lines) != 1+len(evs) {
		t.Fatalf("%d lines for %d events and a header:\n%s", len(lines), len(evs), strings.Join(lines, "\n"))
	}
	t.Logf("\n%s", strings.Join(lines, "\n"))
	header := lines[0]
	cols := map[string]int{}
	for _, title := range []string{"EVENT", "NETNS", "LISTENER", "PEER", "QUEUES", "DETAIL"} {
		cols[title] = strings.Index(header, title)
	}
	want := [][]string{
		{"enqueue", "4026532246", "127.0.0.1:8081", "127.0.0.1:50460", "acc=1/128 syn=0/128", ""},
		{"accept", "4026532246", "127.0.0.1:8081", "127.0.0.1:50460", "acc=0/128 syn=0/128", "latency=110.4µs pid=12185 comm=server"},
		{"syn-drop", "4026531833", "[::1]:443", "-", "acc=4097/4096 syn=12/4096", "reason=accept-queue-full"},
		{"enqueue", "4026532246", "127.0.0.1:8081", "127.0.0.1:50460", "-", ""},
		{"accept", "4026532246", "127.0.0.1:8081", "127.0.0.1:50460", "-", "latency=unknown (enqueued before synq started) pid=1 comm=init"},
	}
	for i, line := range lines {
		if strings.TrimRight(line, " ") != line {
			t.Errorf("line %d ends in blanks: %q", i, line)
		}
		if i == 0 {
			continue
		}
		if !strings.HasPrefix(line, "03:37:19.780445 ") {
			t.Errorf("line %q does not start with the local time to the microsecond", line)
		}
		for j, title := range []string{"EVENT", "NETNS", "LISTENER", "PEER", "QUEUES", "DETAIL"} {
			w := want[i-1][j]
			if w == "" {
				if len(line) > cols[title] {
					t.Errorf("line %q has something under %s, want nothing", line, title)
				}
				continue
			}
			if !strings.HasPrefix(line[min(cols[title], len(line)):], w) {
				t.Errorf("line %q: want %q under %s (column %d)", line, w, title, cols[title])
			}
		}
	}
}

// JSON lines: snake_case fields with units in their names; queue fields
// only when the hook saw the listener, latency_ns only on accepts.
func TestJSONFields(t *testing.T) {
	evs := testEvents()
	lines := written(t, JSON, evs)
	if len(lines) != len(evs) {
		t.Fatalf("%d lines for %d events", len(lines), len(evs))
	}
	for i, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not JSON: %q: %v", line, err)
		}
		ev := evs[i]
		if m["time_ns"].(float64) != float64(ev.Time.UnixNano()) || m["kind"] != ev.Kind.String() ||
			m["netns"].(float64) != float64(ev.Netns) || m["port"].(float64) != float64(ev.Port) || m["addr"] != ev.Addr.String() {
			t.Errorf("%q does not describe %+v", line, ev)
		}
		_, hasQueue := m["accept_queue_len"]
		for _, f := range []string{"accept_queue_max", "syn_queue_len", "syn_queue_max", "sk_drops"} {
			if _, ok := m[f]; ok != hasQueue || ok != ev.QueueKnown {
				t.Errorf("%q: %s present %v, accept_queue_len %v, queue known %v", line, f, ok, hasQueue, ev.QueueKnown)
			}
		}
		if _, ok := m["latency_ns"]; ok != (ev.Kind == tracer.KindAccept && ev.LatencyKnown) {
			t.Errorf("%q: latency_ns present %v", line, ok)
		} else if ok && m["latency_ns"].(float64) != float64(ev.Latency.Nanoseconds()) {
			t.Errorf("%q: latency_ns, want %d", line, ev.Latency.Nanoseconds())
		}
		if r, ok := m["reason"]; ok != (ev.Reason != tracer.ReasonNone) || ok && r != ev.Reason.String() {
			t.Errorf("%q: reason %v, want %q", line, r, ev.Reason)
		}
		for f := range m {
			if f != strings.ToLower(f) || strings.ContainsAny(f, "- ") {
				t.Errorf("%q: field %q is not snake_case", line, f)
			}
		}
	}
}

// AppendJSON writes exactly what encoding/json makes of EventJSON.
func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	evs := testEvents()
	odd := evs[1]
	odd.Comm = tracer.MakeComm("a\"b\\c<d>&\x01\xffé")
	evs = append(evs, odd, tracer.Event{}, tracer.Event{Kind: tracer.KindCookie, Reason: tracer.Reason(200), Time: time.Unix(0, -5)})
	for _, ev := range evs {
		checkAppendJSON(t, &ev)
	}
}

func checkAppendJSON(t *testing.T, ev *tracer.Event) {
	t.Helper()
	want, err := json.Marshal(NewEventJSON(ev))
	if err != nil {
		t.Fatal(err)
	}
	if got := AppendJSON(nil, ev); !bytes.Equal(got, want) {
		t.Errorf("AppendJSON\n got %s\nwant %s", got, want)
	}
}

func FuzzAppendJSON(f *testing.F) {
	f.Add(int64(1), uint8(7), uint8(0), uint32(1), []byte{127, 0, 0, 1}, uint16(80), []byte{127, 0, 0, 1}, uint16(5000), true, uint32(3), int64(1000), true, uint32(9), "srv")
	f.Fuzz(func(t *testing.T, ns int64, kind, reason uint8, netns uint32, la []byte, lp uint16, ra []byte, rp uint16, queue bool, n uint32, lat int64, latKnown bool, pid uint32, comm string) {
		ev := tracer.Event{Time: time.Unix(0, ns), Kind: tracer.Kind(kind), Reason: tracer.Reason(reason), QueueKnown: queue,
			AcceptQueueLen: n, AcceptQueueMax: n + 1, SynQueueLen: n / 2, SkDrops: n / 3, Latency: time.Duration(lat),
			LatencyKnown: latKnown, PID: pid, Comm: tracer.MakeComm(comm)}
		ev.Netns, ev.Port = netns, lp
		if a, ok := netip.AddrFromSlice(la); ok {
			ev.Addr = a
		}
		if a, ok := netip.AddrFromSlice(ra); ok {
			ev.Peer = netip.AddrPortFrom(a, rp)
		}
		checkAppendJSON(t, &ev)
	})
}

func BenchmarkWrite(b *testing.B) {
	evs := testEvents()
	for _, f := range []Format{Text, JSON} {
		b.Run(string(f), func(b *testing.B) {
			ew := NewEventWriter(io.Discard, f)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if err := ew.Write(&evs[i%len(evs)]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// An event of a named listener ends with its workload, in DETAIL (text)
// and as "workload" (JSON); an event whose listener the hook could not see
// (id 0) or whose owner says nothing has none.
func TestEventWorkload(t *testing.T) {
	evs := testEvents()[:3]
	evs[0].Listener, evs[1].Listener = 7, 7 // enqueue and accept of the pod's listener; the drop's is unknown
	pod := NewEventWorkload(aggregate.Owner{PID: 9, Comm: "nginx", Cgroup: "/kubepods/besteffort/pod1/abc",
		Identity: identity.Identity{ContainerID: "abc", Runtime: "containerd", PodUID: "1", Namespace: "shop", Pod: "web-0", Container: "nginx"}})
	if NewEventWorkload(aggregate.Owner{PID: 1, Comm: "init", Cgroup: "/"}) != nil {
		t.Error("the root cgroup without an identity names a workload")
	}
	names := func(id tracer.ListenerID) *EventWorkload {
		if id == 7 {
			return pod
		}
		return nil
	}
	var text, js bytes.Buffer
	for _, c := range []struct {
		b *bytes.Buffer
		f Format
	}{{&text, Text}, {&js, JSON}} {
		ew := NewEventWriter(c.b, c.f)
		ew.Workload = names
		_ = ew.Header()
		for i := range evs {
			if err := ew.Write(&evs[i]); err != nil {
				t.Fatal(err)
			}
		}
	}
	lines := strings.Split(strings.TrimSuffix(text.String(), "\n"), "\n")
	detail := strings.Index(lines[0], "DETAIL")
	if l := lines[1]; strings.Index(l, "workload=") != detail || !strings.HasSuffix(l, " workload=shop/web-0/nginx") {
		t.Errorf("enqueue: %q: want workload=shop/web-0/nginx in DETAIL", l)
	}
	if l := lines[2]; !strings.HasSuffix(l, "comm=server workload=shop/web-0/nginx") {
		t.Errorf("accept: %q: want the workload after the acceptor", l)
	}
	if strings.Contains(lines[3], "workload=") {
		t.Errorf("drop of an unknown listener names a workload: %q", lines[3])
	}
	for i, line := range strings.Split(strings.TrimSpace(js.String()), "\n") {
		var ev struct {
			Port     uint16           `json:"port"`
			Workload string           `json:"workload"`
			Owner    *aggregate.Owner `json:"owner"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("line %d not JSON: %v: %q", i, err, line)
		}
		switch {
		case i < 2 && (ev.Workload != "shop/web-0/nginx" || ev.Owner == nil || ev.Owner.PID != 9 || ev.Owner.Comm != "nginx" ||
			ev.Owner.Pod != "web-0" || ev.Owner.Namespace != "shop" || ev.Owner.Container != "nginx" ||
			ev.Owner.Cgroup != "/kubepods/besteffort/pod1/abc"):
			t.Errorf("line %d: workload %q, owner %+v: %q", i, ev.Workload, ev.Owner, line)
		case i == 2 && (ev.Workload != "" || ev.Owner != nil):
			t.Errorf("line %d: an unknown listener's event names %q %+v", i, ev.Workload, ev.Owner)
		}
	}
}
