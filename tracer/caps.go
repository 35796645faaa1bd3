package tracer

import "fmt"

// Capabilities says what the attached hooks let synq count exactly on this
// kernel. Consumers above the tracer decide what to show from these, never
// from the tier's name.
type Capabilities struct {
	// SynSide: SYNs, cookies and SYN-side drops by reason are hooked
	// (Counts.Syn, Cookie, DropSynQueue, DropAcceptQueue, DropOther).
	// Without it the SYN side is invisible: a listener's SYN-side drops are
	// what its ListenDrops (from sk_drops) count beyond the ACK side.
	SynSide bool
	// SynSideMissing names the SYN-side hooks that did not attach,
	// "prog (target)", cookie hooks last: the SYN-side counts miss what
	// they would have seen (a SYN whose cookie is unseen looks dropped).
	SynSideMissing []string
	// AckOverflow: every final ACK dropped on a full accept queue is
	// counted (Counts.AckOverflow). CookieAckOverflow: only those of cookie
	// ACKs are (the kfree_skb tracepoint before TCP_LISTEN_OVERFLOW).
	AckOverflow, CookieAckOverflow bool
	// SynackRetrans: SYN-ACK retransmits are counted.
	SynackRetrans bool
	// ListenDropsExact: per-listener ListenDrops are exact (see
	// ListenDrops), not approximated by sk_drops.
	ListenDropsExact bool
}

// Caps derives the capabilities of the attached hooks.
func (i Info) Caps() Capabilities {
	c := Capabilities{SynSide: i.Tier != TierTracepoint, ListenDropsExact: i.ExactListenDrops}
	var cookie []string
	for _, h := range i.Hooks {
		if h.Err == nil {
			switch h.Program {
			case "tp_synack_retrans":
				c.SynackRetrans = true
			case "tp_kfree_skb":
				c.CookieAckOverflow = true
			}
			continue
		}
		if !c.SynSide {
			continue
		}
		name := fmt.Sprintf("%s (%s)", h.Program, h.Target)
		switch h.Program {
		case "tp_synack_retrans", "fx_accept_a2", "fx_accept_a4", "kp_accept", "krp_accept":
			// feed no SYN-side count
		case "fe_cookie_v4", "fe_cookie_v6", "kp_cookie_v4", "kp_cookie_v6":
			cookie = append(cookie, name)
		default:
			c.SynSideMissing = append(c.SynSideMissing, name)
		}
	}
	c.SynSideMissing = append(c.SynSideMissing, cookie...)
	for _, k := range i.Kinds() {
		if k == KindAckOverflow {
			c.AckOverflow = true
		}
	}
	if c.AckOverflow {
		c.CookieAckOverflow = false
	}
	return c
}

// Sub returns c − prev. The kernel only adds; if any count shrank, the
// listener's LRU entry was evicted and started again (or the address now
// belongs to another listener), and c is all there is since: like
// Histogram.Sub, never a field-by-field mix, which would undercount every
// field that happened to grow past its old value.
func (c Counts) Sub(prev Counts) Counts {
	if c.Syn < prev.Syn || c.Cookie < prev.Cookie || c.SynackRetrans < prev.SynackRetrans ||
		c.Enqueue < prev.Enqueue || c.AckOverflow < prev.AckOverflow || c.Accept < prev.Accept ||
		c.DropSynQueue < prev.DropSynQueue || c.DropAcceptQueue < prev.DropAcceptQueue ||
		c.DropOther < prev.DropOther || c.RcvDrops < prev.RcvDrops || c.AckOther < prev.AckOther {
		return c
	}
	return Counts{
		Syn: c.Syn - prev.Syn, Cookie: c.Cookie - prev.Cookie, SynackRetrans: c.SynackRetrans - prev.SynackRetrans,
		Enqueue: c.Enqueue - prev.Enqueue, AckOverflow: c.AckOverflow - prev.AckOverflow, Accept: c.Accept - prev.Accept,
		DropSynQueue: c.DropSynQueue - prev.DropSynQueue, DropAcceptQueue: c.DropAcceptQueue - prev.DropAcceptQueue,
		DropOther: c.DropOther - prev.DropOther, RcvDrops: c.RcvDrops - prev.RcvDrops, AckOther: c.AckOther - prev.AckOther,
	}
}

// Add returns c + o.
func (c Counts) Add(o Counts) Counts {
	return Counts{
		Syn: c.Syn + o.Syn, Cookie: c.Cookie + o.Cookie, SynackRetrans: c.SynackRetrans + o.SynackRetrans,
		Enqueue: c.Enqueue + o.Enqueue, AckOverflow: c.AckOverflow + o.AckOverflow, Accept: c.Accept + o.Accept,
		DropSynQueue: c.DropSynQueue + o.DropSynQueue, DropAcceptQueue: c.DropAcceptQueue + o.DropAcceptQueue,
		DropOther: c.DropOther + o.DropOther, RcvDrops: c.RcvDrops + o.RcvDrops, AckOther: c.AckOther + o.AckOther,
	}
}
