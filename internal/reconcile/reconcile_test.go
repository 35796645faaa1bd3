package reconcile

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/synq-trace/synq/internal/netstat"
	"github.com/synq-trace/synq/tracer"
)

// world is a fake kernel: namespaces with listeners and counters, and a
// tracer's counts.
type world struct {
	cur       uint64
	listeners map[uint64][]tracer.Listener
	counters  map[uint64]netstat.Snapshot
	gone      map[uint64]bool
	info      tracer.Info
	counts    map[tracer.ListenerID]tracer.Counts
	stats     tracer.Stats
}

func newWorld(info tracer.Info) *world {
	return &world{
		listeners: map[uint64][]tracer.Listener{}, counters: map[uint64]netstat.Snapshot{},
		gone: map[uint64]bool{}, info: info, counts: map[tracer.ListenerID]tracer.Counts{},
	}
}

func (w *world) Info() tracer.Info { return w.info }
func (w *world) Counts() (map[tracer.ListenerID]tracer.Counts, error) {
	out := map[tracer.ListenerID]tracer.Counts{}
	for k, v := range w.counts {
		out[k] = v
	}
	return out, nil
}
func (w *world) Stats() (tracer.Stats, error) { return w.stats, nil }
func (w *world) Listeners() ([]tracer.Listener, error) {
	return append([]tracer.Listener(nil), w.listeners[w.cur]...), nil
}

func (w *world) read() (netstat.Snapshot, error) {
	s := netstat.Snapshot{}
	for _, c := range counters {
		s[c.key] = 0
	}
	for k, v := range w.counters[w.cur] {
		s[k] = v
	}
	return s, nil
}

func (w *world) ns(ino uint64, name string) Namespace {
	return Namespace{Inode: ino, Name: name, Do: func(fn func() error) error {
		if w.gone[ino] {
			return errors.New("netns is gone")
		}
		w.cur = ino
		defer func() { w.cur = 0 }()
		return fn()
	}}
}

// bump adds to a namespace's counter ("ListenDrops" -> TcpExt.ListenDrops).
func (w *world) bump(ino uint64, counter string, n int64) {
	if w.counters[ino] == nil {
		w.counters[ino] = netstat.Snapshot{}
	}
	for _, c := range counters {
		if c.name == counter {
			w.counters[ino][c.key] += n
			return
		}
	}
	panic(counter)
}

func (w *world) listen(ino uint64, id tracer.ListenerID, inode uint64, port uint16) {
	w.listeners[ino] = append(w.listeners[ino], tracer.Listener{
		ID: id, Inode: inode, AcceptQueueMax: 1,
		Endpoint: tracer.Endpoint{Netns: uint32(ino), Addr: netip.MustParseAddr("127.0.0.1"), Port: port},
	})
}

func (w *world) close(ino uint64, inode uint64) {
	ls := w.listeners[ino][:0]
	for _, l := range w.listeners[ino] {
		if l.Inode != inode {
			ls = append(ls, l)
		}
	}
	w.listeners[ino] = ls
}

func (w *world) skDrops(ino uint64, inode uint64, n uint32) {
	for i, l := range w.listeners[ino] {
		if l.Inode == inode {
			w.listeners[ino][i].SkDrops += n
		}
	}
}

func (w *world) count(id tracer.ListenerID, f func(c *tracer.Counts)) {
	c := w.counts[id]
	f(&c)
	w.counts[id] = c
}

func fentryInfo() tracer.Info {
	return tracer.Info{Tier: tracer.TierFentry, ExactListenDrops: true, Hooks: []tracer.HookStatus{
		{Program: "tp_synack_retrans"}, {Program: "fe_conn_request"}, {Program: "fe_cookie_v4"},
		{Program: "fx_syn_recv4_a6"},
	}}
}

func tracepointInfo(exact bool) tracer.Info {
	return tracer.Info{Tier: tracer.TierTracepoint, ExactListenDrops: exact, Hooks: []tracer.HookStatus{
		{Program: "tp_synack_retrans"}, {Program: "tp_set_state"}, {Program: "tp_kfree_skb"},
	}}
}

func row(t *testing.T, n NetnsReport, counter string) Row {
	t.Helper()
	r, ok := n.Row(counter)
	if !ok {
		t.Fatalf("no %s row", counter)
	}
	return r
}

func wantRow(t *testing.T, n NetnsReport, counter string, kernel, synq uint64, claimed bool) {
	t.Helper()
	r := row(t, n, counter)
	if r.Kernel == nil || *r.Kernel != kernel || r.Synq == nil || *r.Synq != synq || r.Claimed != claimed {
		t.Errorf("%s: kernel %v synq %v claimed %v (%q), want %d %d %v", counter, deref(r.Kernel), deref(r.Synq), r.Claimed, r.Note, kernel, synq, claimed)
	}
	if !claimed && r.Note == "" {
		t.Errorf("%s: not claimed without a note", counter)
	}
}

func deref(p *uint64) any {
	if p == nil {
		return nil
	}
	return *p
}

func report(t *testing.T, r *Reconciler, ino uint64) (*Report, NetnsReport) {
	t.Helper()
	rep, err := r.Report(true)
	if err != nil {
		t.Fatal(err)
	}
	n, ok := rep.Namespace(ino)
	if !ok {
		t.Fatalf("no report for netns %d: %+v", ino, rep.Netns)
	}
	return rep, n
}

// fentry/kprobe: synq's side is the counts since the baseline, whatever
// happened to the listeners.
func TestFentryRows(t *testing.T) {
	w := newWorld(fentryInfo())
	w.listen(7, 0xa, 100, 80)
	w.count(0xa, func(c *tracer.Counts) { c.DropAcceptQueue = 5 }) // before the baseline
	w.bump(7, ListenDrops, 5)
	ns := w.ns(7, "test")
	r, err := New(w, w, Config{Traced: &ns, ReadCounters: w.read})
	if err != nil {
		t.Fatal(err)
	}
	w.count(0xa, func(c *tracer.Counts) {
		c.DropAcceptQueue += 3
		c.AckOverflow += 2
		c.AckOther++
		c.DropSynQueue += 4
		c.Cookie += 6
		c.Enqueue += 9
		c.SynackRetrans += 2
	})
	w.bump(7, ListenDrops, 10)
	w.bump(7, ListenOverflows, 5)
	w.bump(7, TCPReqQFullDrop, 4)
	w.bump(7, SyncookiesSent, 6)
	w.bump(7, PassiveOpens, 9)
	w.bump(7, TCPSynRetrans, 7)
	w.close(7, 100) // closed: its counts stay in the tracer's map
	rep, n := report(t, r, 7)
	wantRow(t, n, ListenDrops, 10, 10, true)
	wantRow(t, n, ListenOverflows, 5, 5, true)
	wantRow(t, n, TCPReqQFullDrop, 4, 4, true)
	wantRow(t, n, SyncookiesSent, 6, 6, true)
	wantRow(t, n, PassiveOpens, 9, 9, false)
	wantRow(t, n, TCPSynRetrans, 7, 2, false)
	if len(n.Listeners) != 1 || !n.Listeners[0].Closed || n.Listeners[0].Port != 80 || n.Listeners[0].ListenDrops != 10 {
		t.Errorf("listeners %+v: want the closed :80 with 10 drops", n.Listeners)
	}

	var b bytes.Buffer
	if err := WriteText(&b, rep); err != nil {
		t.Fatal(err)
	}
	text := b.String()
	for _, want := range []string{"netns test (net:[7])", "ListenDrops      10      10    100%", "(28.6%)", "lost 0"} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
	for _, line := range strings.Split(text, "\n") {
		if strings.HasSuffix(line, " ") {
			t.Errorf("trailing space in %q", line)
		}
	}

	b.Reset()
	if err := WriteJSON(&b, rep); err != nil {
		t.Fatal(err)
	}
	var j struct {
		Reconcile struct {
			Tier  string `json:"tier"`
			Final bool   `json:"final"`
			Netns []struct {
				Netns     uint64           `json:"netns"`
				Counters  []map[string]any `json:"counters"`
				Listeners []map[string]any `json:"listeners"`
			} `json:"netns"`
		} `json:"reconcile"`
	}
	if err := json.Unmarshal(b.Bytes(), &j); err != nil || strings.Count(b.String(), "\n") != 1 {
		t.Fatalf("not one JSON line: %v\n%s", err, b.String())
	}
	rj := j.Reconcile
	if rj.Tier != "fentry" || !rj.Final || len(rj.Netns) != 1 || rj.Netns[0].Netns != 7 || len(rj.Netns[0].Counters) != len(counters) {
		t.Fatalf("JSON %s", b.String())
	}
	c0 := rj.Netns[0].Counters[0]
	if c0["counter"] != "ListenDrops" || c0["kernel"] != 10.0 || c0["synq"] != 10.0 || c0["coverage_ratio"] != 1.0 || c0["claimed"] != true {
		t.Errorf("first counter %v", c0)
	}
	if l := rj.Netns[0].Listeners[0]; l["port"] != 80.0 || l["listen_drops"] != 10.0 || l["closed"] != true {
		t.Errorf("listener %v", l)
	}
}

// Tracepoint tier: ListenDrops from sk_drops deltas minus tcp_v4_rcv drops.
// A listener closed between samples keeps what the last sample saw; one
// created after the baseline counts from 0, also when it reuses the address
// (ListenerID) of a closed one.
func TestTracepointListenDrops(t *testing.T) {
	w := newWorld(tracepointInfo(true))
	w.listen(7, 0xa, 100, 80)
	w.skDrops(7, 100, 40) // before the baseline
	ns := w.ns(7, "")
	r, err := New(w, w, Config{Traced: &ns, ReadCounters: w.read})
	if err != nil {
		t.Fatal(err)
	}
	// 3 listen drops and 2 discard_and_relse on :80, then it closes.
	w.skDrops(7, 100, 5)
	w.count(0xa, func(c *tracer.Counts) { c.RcvDrops += 2; c.AckOverflow++ })
	w.bump(7, ListenDrops, 3)
	if err := r.Sample(); err != nil {
		t.Fatal(err)
	}
	w.close(7, 100)
	// Same address, new socket: 4 drops.
	w.listen(7, 0xa, 101, 80)
	w.skDrops(7, 101, 4)
	w.bump(7, ListenDrops, 4)
	// Another new listener with 1 drop and an enqueue without listener.
	w.listen(7, 0xb, 102, 81)
	w.skDrops(7, 102, 1)
	w.bump(7, ListenDrops, 1)
	w.count(0, func(c *tracer.Counts) { c.Enqueue++ })
	w.bump(7, PassiveOpens, 1)
	_, n := report(t, r, 7)
	wantRow(t, n, ListenDrops, 8, 8, true)
	wantRow(t, n, ListenOverflows, 0, 1, false)
	wantRow(t, n, PassiveOpens, 1, 1, false)
	if r := row(t, n, TCPReqQFullDrop); r.Synq != nil || r.Claimed || r.Note == "" {
		t.Errorf("TCPReqQFullDrop in the tracepoint tier: %+v", r)
	}
	if r := row(t, n, SyncookiesSent); coverage(r) != "n/a" {
		t.Errorf("SyncookiesSent coverage %q, want n/a", coverage(r))
	}

	// Without kfree_skb's rx_sk: approximate, not claimed.
	w2 := newWorld(tracepointInfo(false))
	w2.listen(7, 0xa, 100, 80)
	ns2 := w2.ns(7, "")
	r2, err := New(w2, w2, Config{Traced: &ns2, ReadCounters: w2.read})
	if err != nil {
		t.Fatal(err)
	}
	w2.skDrops(7, 100, 3)
	w2.bump(7, ListenDrops, 2)
	_, n2 := report(t, r2, 7)
	wantRow(t, n2, ListenDrops, 2, 3, false)
}

// Every netns traced: listeners are placed by listing and by events; what
// cannot be placed is reported apart; idle namespaces are counted, not shown,
// except the host; a namespace that vanished says so.
func TestAllNamespaces(t *testing.T) {
	w := newWorld(fentryInfo())
	nss := []Namespace{w.ns(1, ""), w.ns(7, "a"), w.ns(8, "b"), w.ns(9, "idle")}
	w.listen(7, 0xa, 100, 80)
	w.listen(8, 0xb, 101, 80)
	r, err := New(w, w, Config{Host: 1, ReadCounters: w.read,
		Discover: func() ([]Namespace, error) { return nss, nil }})
	if err != nil {
		t.Fatal(err)
	}
	// A listener in netns 7 that lives between samples: placed by an event.
	w.count(0xc, func(c *tracer.Counts) { c.AckOverflow = 2 })
	r.Observe(&tracer.Event{Listener: 0xc, Endpoint: tracer.Endpoint{Netns: 7, Port: 81}})
	// One nobody can place.
	w.count(0xd, func(c *tracer.Counts) { c.DropOther = 1 })
	// One in a netns synq cannot enter (no process, no name).
	w.count(0xe, func(c *tracer.Counts) { c.DropOther = 1 })
	r.Observe(&tracer.Event{Listener: 0xe, Endpoint: tracer.Endpoint{Netns: 42}})
	w.count(0xa, func(c *tracer.Counts) { c.DropAcceptQueue = 1 })
	w.bump(7, ListenDrops, 3)
	w.bump(7, ListenOverflows, 3)
	w.count(0xb, func(c *tracer.Counts) { c.Enqueue = 1 })
	w.bump(8, PassiveOpens, 1)
	w.gone[8] = true

	rep, n7 := report(t, r, 7)
	wantRow(t, n7, ListenDrops, 3, 3, true)
	wantRow(t, n7, ListenOverflows, 3, 3, true)
	if rep.Unattributed == nil || rep.Unattributed.DropOther != 1 {
		t.Errorf("unattributed %+v, want the one drop of 0xd", rep.Unattributed)
	}
	if rep.Idle != 1 {
		t.Errorf("%d idle netns, want 1", rep.Idle)
	}
	if h, ok := rep.Namespace(1); !ok || !h.Host {
		t.Errorf("host netns not reported: %+v", rep.Netns)
	}
	n8, ok := rep.Namespace(8)
	if !ok || !strings.Contains(n8.Err, "gone") || row(t, n8, PassiveOpens).Kernel != nil || *row(t, n8, PassiveOpens).Synq != 1 {
		t.Errorf("vanished netns: %+v", n8)
	}
	n42, ok := rep.Namespace(42)
	if !ok || !strings.Contains(n42.Err, "not readable") || *row(t, n42, ListenDrops).Synq != 1 {
		t.Errorf("netns only seen in events: %+v", n42)
	}
	var b bytes.Buffer
	WriteText(&b, rep)
	if !strings.Contains(b.String(), "not placed in any netns") || !strings.Contains(b.String(), "1 idle netns") {
		t.Errorf("text:\n%s", b.String())
	}
}

// A claimed counter that is off says by how much and why it may be.
func TestClaimsAndGaps(t *testing.T) {
	info := fentryInfo()
	info.Hooks = append(info.Hooks, tracer.HookStatus{Program: "fx_syn_recv6_a6", Target: "tcp_v6_syn_recv_sock", Err: errors.New("EINVAL")},
		tracer.HookStatus{Program: "fx_accept_a2", Target: "inet_csk_accept", Err: errors.New("EINVAL")})
	w := newWorld(info)
	ns := w.ns(7, "")
	r, err := New(w, w, Config{Traced: &ns, ReadCounters: w.read})
	if err != nil {
		t.Fatal(err)
	}
	w.bump(7, ListenDrops, 2)
	_, n := report(t, r, 7)
	if r := row(t, n, ListenDrops); r.Claimed || !strings.Contains(r.Note, "fx_syn_recv6_a6") || strings.Contains(r.Note, "accept") {
		t.Errorf("missing syn_recv hook: %+v", r)
	}

	w = newWorld(fentryInfo())
	ns = w.ns(7, "")
	r, err = New(w, w, Config{Traced: &ns, ReadCounters: w.read})
	if err != nil {
		t.Fatal(err)
	}
	w.bump(7, ListenDrops, 2)
	w.count(1, func(c *tracer.Counts) { c.DropOther = 1 })
	w.stats.RecursionMisses = 1
	_, n = report(t, r, 7)
	if r := row(t, n, ListenDrops); !r.Claimed || !strings.Contains(r.Note, "off by -1") || !strings.Contains(r.Note, "recursion") {
		t.Errorf("short claimed counter: %+v", r)
	}

	w = newWorld(fentryInfo())
	ns = w.ns(7, "")
	r, err = New(w, w, Config{Traced: &ns, Port: 80, ReadCounters: w.read})
	if err != nil {
		t.Fatal(err)
	}
	_, n = report(t, r, 7)
	for _, row := range n.Rows {
		if row.Claimed || row.Note == "" {
			t.Errorf("--port: %+v", row)
		}
	}
}

func TestPct(t *testing.T) {
	for _, c := range []struct {
		v     float64
		exact bool
		want  string
	}{
		{100, true, "100%"}, {99.96, false, "99.9%"}, {100.04, false, "100.1%"}, {50, false, "50%"}, {33.333, false, "33.3%"},
	} {
		if got := pct(c.v, c.exact); got != c.want {
			t.Errorf("pct(%v, %v) = %q, want %q", c.v, c.exact, got, c.want)
		}
	}
}
