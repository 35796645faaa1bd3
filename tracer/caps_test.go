package tracer

import (
	"slices"
	"testing"
)

// An LRU eviction restarts a listener's entry from zero: whatever grows past
// its old value afterwards is still all new. A field-by-field subtraction
// (what the exporter and the reconciler did) kept only the excess of those
// fields: here 2 enqueues instead of 7.
func TestCountsSubEviction(t *testing.T) {
	prev := Counts{Syn: 10, Enqueue: 5, Accept: 5}
	cur := Counts{Syn: 3, Enqueue: 7, Accept: 7}
	if got := cur.Sub(prev); got != cur {
		t.Fatalf("after an eviction Sub = %+v, want everything since: %+v", got, cur)
	}
	grown := Counts{Syn: 12, Enqueue: 9, Accept: 6, RcvDrops: 1}
	if got, want := grown.Sub(prev), (Counts{Syn: 2, Enqueue: 4, Accept: 1, RcvDrops: 1}); got != want {
		t.Fatalf("Sub = %+v, want %+v", got, want)
	}
	if got := prev.Add(grown.Sub(prev)); got != grown {
		t.Fatalf("prev + (grown − prev) = %+v, want %+v", got, grown)
	}
}

func TestCaps(t *testing.T) {
	tp := Info{Tier: TierTracepoint, Hooks: []HookStatus{{Program: "tp_synack_retrans"}, {Program: "tp_kfree_skb"}}}
	c := tp.Caps()
	if c.SynSide || !c.SynackRetrans || c.AckOverflow || !c.CookieAckOverflow {
		t.Fatalf("tracepoint without TCP_LISTEN_OVERFLOW: %+v", c)
	}
	tp.features.listenOverflowReason = true
	if c := tp.Caps(); !c.AckOverflow || c.CookieAckOverflow {
		t.Fatalf("tracepoint with TCP_LISTEN_OVERFLOW: %+v", c)
	}
	fe := Info{Tier: TierFentry, Hooks: []HookStatus{{Program: "fe_conn_request"}, {Program: "fx_syn_recv4_a6"},
		{Program: "fe_cookie_v4", Target: "cookie_v4_init_sequence", Err: errNoKprobes},
		{Program: "fx_accept_a2", Target: "inet_csk_accept", Err: errNoKprobes},
		{Program: "fx_reqsk_queue_add", Target: "inet_csk_reqsk_queue_add", Err: errNoKprobes}}}
	c = fe.Caps()
	want := []string{"fx_reqsk_queue_add (inet_csk_reqsk_queue_add)", "fe_cookie_v4 (cookie_v4_init_sequence)"}
	if !c.SynSide || !c.AckOverflow || !slices.Equal(c.SynSideMissing, want) {
		t.Fatalf("fentry: %+v, want missing %q", c, want)
	}
}
