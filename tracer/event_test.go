package tracer

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

func encode(t testing.TB, raw tpSynqEvent) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := binary.Write(&b, binary.LittleEndian, raw); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func comm(s string) (c [16]int8) {
	for i := 0; i < len(s) && i < 15; i++ {
		c[i] = int8(s[i])
	}
	return
}

func TestDecode(t *testing.T) {
	v6 := netip.MustParseAddr("2001:db8::1")
	for _, c := range []struct {
		name string
		raw  tpSynqEvent
		want Event
	}{
		{
			name: "accept v4 with latency",
			raw: tpSynqEvent{TimeNs: 5e9, Listener: 0xffff1, LatencyNs: 1500, Netns: 4026531840, AccLen: 3, AccMax: 128,
				SynLen: 1, SkDrops: 7, Pid: 42, Family: 2, Lport: 8080, Rport: 51000, Kind: uint8(KindAccept),
				Laddr: [16]uint8{127, 0, 0, 1}, Raddr: [16]uint8{127, 0, 0, 2}, Comm: comm("nginx")},
			want: Event{Time: time.Unix(5, 0).Add(time.Hour), Kind: KindAccept, Listener: 0xffff1,
				Endpoint:   Endpoint{Netns: 4026531840, Addr: netip.MustParseAddr("127.0.0.1"), Port: 8080},
				Peer:       netip.MustParseAddrPort("127.0.0.2:51000"),
				QueueKnown: true, AcceptQueueLen: 3, AcceptQueueMax: 128, SynQueueLen: 1, SkDrops: 7,
				Latency: 1500, LatencyKnown: true, PID: 42, Comm: MakeComm("nginx")},
		},
		{
			name: "syn-drop v6 accept queue full",
			raw: tpSynqEvent{TimeNs: 1, Family: 10, Lport: 443, Kind: uint8(KindSynDrop), Reason: uint8(ReasonAcceptQueueFull),
				AccLen: 5, AccMax: 4, Laddr: v6.As16()},
			want: Event{Time: time.Unix(0, 1).Add(time.Hour), Kind: KindSynDrop, Reason: ReasonAcceptQueueFull,
				Endpoint: Endpoint{Addr: v6, Port: 443}, QueueKnown: true, AcceptQueueLen: 5, AcceptQueueMax: 4},
		},
		{
			name: "enqueue without listener",
			raw:  tpSynqEvent{Family: 2, Lport: 80, Kind: uint8(KindEnqueue), Flags: flagNoQueue},
			want: Event{Time: time.Unix(0, 0).Add(time.Hour), Kind: KindEnqueue, Endpoint: Endpoint{Addr: netip.AddrFrom4([4]byte{}), Port: 80}},
		},
		{
			name: "accept of a child older than synq",
			raw:  tpSynqEvent{Family: 2, Lport: 80, Kind: uint8(KindAccept), Flags: flagNoLatency, LatencyNs: 99},
			want: Event{Time: time.Unix(0, 0).Add(time.Hour), Kind: KindAccept, Endpoint: Endpoint{Addr: netip.AddrFrom4([4]byte{}), Port: 80},
				QueueKnown: true, Latency: 99},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			var ev Event
			if err := Decode(encode(t, c.raw), time.Hour, &ev); err != nil {
				t.Fatal(err)
			}
			if ev != c.want {
				t.Errorf("got  %+v\nwant %+v", ev, c.want)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	good := tpSynqEvent{Family: 2, Kind: uint8(KindSyn)}
	for _, c := range []struct {
		name string
		mut  func(*tpSynqEvent)
		cut  int
		want string
	}{
		{name: "short", cut: 10, want: "record of"},
		{name: "kind", mut: func(r *tpSynqEvent) { r.Kind = 99 }, want: "unknown kind"},
		{name: "kind zero", mut: func(r *tpSynqEvent) { r.Kind = 0 }, want: "unknown kind"},
		{name: "reason", mut: func(r *tpSynqEvent) { r.Reason = 9 }, want: "unknown reason"},
		{name: "family", mut: func(r *tpSynqEvent) { r.Family = 1 }, want: "address family"},
	} {
		t.Run(c.name, func(t *testing.T) {
			raw := good
			if c.mut != nil {
				c.mut(&raw)
			}
			b := encode(t, raw)
			if c.cut > 0 {
				b = b[:c.cut]
			}
			var ev Event
			err := Decode(b, 0, &ev)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestParseKindRoundTrip(t *testing.T) {
	for _, k := range AllKinds {
		got, err := ParseKind(k.String())
		if err != nil || got != k {
			t.Errorf("ParseKind(%q) = %v, %v", k, got, err)
		}
	}
	if _, err := ParseKind("syn_drop"); err == nil {
		t.Error("ParseKind accepted syn_drop")
	}
}

// FuzzDecode: any bytes give an event or an error, never a panic, and a
// decoded event is self-consistent.
func FuzzDecode(f *testing.F) {
	f.Add(encode(f, tpSynqEvent{Family: 2, Kind: uint8(KindAccept), Comm: comm("x")}))
	f.Add(encode(f, tpSynqEvent{Family: 10, Kind: uint8(KindSynDrop), Reason: 2}))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		var ev Event
		if err := Decode(b, 0, &ev); err != nil {
			return
		}
		if ev.Kind.String() == "" || strings.HasPrefix(ev.Kind.String(), "kind(") {
			t.Errorf("decoded unknown kind %d", ev.Kind)
		}
		if !ev.Addr.IsValid() {
			t.Error("decoded an invalid listener address")
		}
		if ev.Kind != KindAccept && (ev.LatencyKnown || ev.Comm != Comm{}) {
			t.Error("latency on a non-accept event")
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	rec := encode(b, tpSynqEvent{Family: 2, Kind: uint8(KindEnqueue), Lport: 80, Laddr: [16]uint8{127, 0, 0, 1}})
	var ev Event
	b.ReportAllocs()
	b.SetBytes(int64(len(rec)))
	for i := 0; i < b.N; i++ {
		if err := Decode(rec, 0, &ev); err != nil {
			b.Fatal(err)
		}
	}
}

func TestComm(t *testing.T) {
	for _, c := range []struct {
		raw  [16]int8
		want string
	}{
		{comm("nginx"), "nginx"},
		{[16]int8{}, ""},
		{comm("fifteen-chars-x"), "fifteen-chars-x"},
		{[16]int8{'a', 'b', 0, 'o', 'l', 'd'}, "ab"}, // stale bytes after the NUL
		{[16]int8{'s', 'i', 'x', 't', 'e', 'e', 'n', '-', 'n', 'o', '-', 'n', 'u', 'l', '!', '!'}, "sixteen-no-nul!!"},
	} {
		var ev Event
		if err := Decode(encode(t, tpSynqEvent{Family: 2, Kind: uint8(KindAccept), Comm: c.raw}), 0, &ev); err != nil {
			t.Fatal(err)
		}
		if got := ev.Comm.String(); got != c.want {
			t.Errorf("Comm %v: String() = %q, want %q", c.raw, got, c.want)
		}
		if ev.Comm != MakeComm(c.want) {
			t.Errorf("Comm %v = %v, want MakeComm(%q)", c.raw, ev.Comm, c.want)
		}
		if b, _ := ev.Comm.AppendText([]byte("x=")); string(b) != "x="+c.want {
			t.Errorf("AppendText = %q", b)
		}
		if j, err := json.Marshal(ev.Comm); err != nil || string(j) != strconv.Quote(c.want) {
			t.Errorf("JSON %s, %v; want %q", j, err, c.want)
		}
	}
	rec := encode(t, tpSynqEvent{Family: 2, Kind: uint8(KindAccept), Comm: comm("nginx")})
	var ev Event
	if n := testing.AllocsPerRun(100, func() { _ = Decode(rec, 0, &ev) }); n != 0 {
		t.Errorf("Decode of an accept event: %v allocs, want 0", n)
	}
}
