package doctor

import "fmt"

// synackRetransMin: SYN-ACK retransmits worth a finding, when they also
// outnumber a tenth of the handshakes completed. One retransmit means one
// client did not answer within 1 s; a few per window are ordinary loss.
const synackRetransMin = 10

// synSide: the SYN queue full (drops with cookies off, cookies sent with
// them on) and SYN-ACK retransmits.
func (d *diag) synSide() []Finding {
	var out []Finding
	r := d.r
	cookiesSetting := d.sysctl(func(s Sysctls) *int64 { return s.Syncookies })
	maxSyn := d.sysctl(func(s Sysctls) *int64 { return s.MaxSynBacklog })
	reqFull := d.delta("TcpExt.TCPReqQFullDrop")
	sent := d.delta("TcpExt.SyncookiesSent")
	setting := "unknown"
	if cookiesSetting != nil {
		setting = itoa(*cookiesSetting)
	}
	limit := fmt.Sprintf("the SYN queue holds up to the listener's backlog, %d (it is full past sk_max_ack_backlog); tcp_syncookies=%s", r.AcceptQueue.Max, setting)
	if maxSyn != nil {
		limit += fmt.Sprintf("; tcp_max_syn_backlog %d (with cookies off, peers not proven drop from 3/4 of it)", *maxSyn)
	}

	// SYNs dropped for a full SYN queue: seen by the hooks, settled from
	// the netns's counters, or only inferred from them.
	var drops uint64
	inferred := ""
	switch {
	case r.SynQueueFull != nil:
		drops = *r.SynQueueFull
		if r.SettledBy != "" {
			inferred = d.inferredSyn()
		}
	case r.SynDerived != nil && *r.SynDerived > 0 && reqFull != nil && *reqFull > 0:
		drops = min(*r.SynDerived, uint64(*reqFull))
		inferred = fmt.Sprintf("the %s tier cannot see why a SYN is dropped: this listener dropped %d SYNs while its netns counted %d TCPReqQFullDrop; other listeners of the netns may share them", d.in.Frame.Tier, *r.SynDerived, *reqFull)
	}
	if drops > 0 {
		f := d.finding(KindSynQueue, Critical, drops, "the SYN queue is full and SYNs are dropped")
		f.Evidence = []Evidence{
			ev("SYNs dropped: SYN queue full", r.SynQueueFull, "TcpExt.TCPReqQFullDrop", reqFull),
			ev(fmt.Sprintf("SYN queue now %d, peak %d", r.SynQueue.Now, r.SynQueue.Peak), nil, "", nil),
			ev("connections dropped in all (the listener's ListenDrops)", u(r.Drops), "TcpExt.ListenDrops", d.delta("TcpExt.ListenDrops")),
		}
		f.Limit = limit
		if cookiesSetting != nil && *cookiesSetting == 0 {
			f.Action = "enable SYN cookies in the listener's netns (`sysctl -w net.ipv4.tcp_syncookies=1`): a full SYN queue then answers with cookies instead of dropping; or raise the application's backlog (the SYN queue's limit too) and net.ipv4.tcp_max_syn_backlog"
		} else {
			f.Action = "raise the application's backlog (it bounds the SYN queue too) and net.ipv4.tcp_max_syn_backlog; if the SYNs are a flood, filter them upstream"
		}
		f.Inferred = inferred
		out = append(out, f)
	}

	// SYN cookies: per listener on the tiers that see them, else the
	// netns's SyncookiesSent, inferred for a listener whose SYN queue was
	// seen at its limit.
	var cookies uint64
	inferred = ""
	switch {
	case r.Cookies != nil:
		cookies = *r.Cookies
	case sent != nil && *sent > 0 && r.SynQueue.Peak >= r.AcceptQueue.Max:
		cookies = uint64(*sent)
		inferred = fmt.Sprintf("the %s tier cannot see SYN cookies per listener: the netns sent %d (TcpExt.SyncookiesSent) while this listener's SYN queue was at its limit", d.in.Frame.Tier, *sent)
	}
	if cookies > 0 {
		f := d.finding(KindCookies, Warning, cookies, "SYN cookies are being sent: the SYN queue overflowed")
		f.Evidence = []Evidence{
			ev("SYN cookies sent", r.Cookies, "TcpExt.SyncookiesSent", sent),
			ev(fmt.Sprintf("SYN queue now %d, peak %d", r.SynQueue.Now, r.SynQueue.Peak), nil, "", nil),
		}
		if r.Syn != nil {
			f.Evidence = append(f.Evidence, ev("SYNs received", r.Syn, "", nil))
		}
		f.Limit = limit
		if cookiesSetting != nil && *cookiesSetting == 2 {
			f.Severity = Notice
			f.Title = "SYN cookies are sent for every SYN (tcp_syncookies=2)"
			f.Action = "nothing is lost to a full queue: tcp_syncookies=2 sends cookies always; set it to 1 to keep TCP options (window scaling, SACK) except under a flood"
		} else {
			f.Action = "a SYN flood, or a backlog too small for the handshake rate: if the sources are real clients, raise the application's backlog and net.ipv4.tcp_max_syn_backlog; if not, the cookies are doing their job: filter the flood upstream"
		}
		f.Inferred = inferred
		out = append(out, f)
	}

	if r.SynackRetrans != nil && *r.SynackRetrans >= synackRetransMin && *r.SynackRetrans*10 > r.Enqueued {
		f := d.finding(KindSynackRetx, Warning, *r.SynackRetrans, "SYN-ACKs are retransmitted: clients do not complete the handshake")
		f.Evidence = []Evidence{
			ev("SYN-ACKs retransmitted", r.SynackRetrans, "TcpExt.TCPSynRetrans", d.delta("TcpExt.TCPSynRetrans")),
			ev("handshakes completed", u(r.Enqueued), "", nil),
			ev(fmt.Sprintf("SYN queue now %d, peak %d", r.SynQueue.Now, r.SynQueue.Peak), nil, "", nil),
		}
		f.Limit = fmt.Sprintf("each unanswered request holds a SYN queue slot (of %d) for the SYN-ACK retries, net.ipv4.tcp_synack_retries", r.AcceptQueue.Max)
		f.Action = "spoofed sources (a flood) or loss on the way back to the clients: with a flood, keep tcp_syncookies=1 and lower net.ipv4.tcp_synack_retries; with real clients, look for the loss between them and this host"
		f.Inferred = "the kernel's TCPSynRetrans is netns-wide and also counts this host's own SYN retransmits as a client"
		out = append(out, f)
	}
	return out
}

// otherDrops: ListenDrops that are not a full queue.
func (d *diag) otherDrops() (Finding, bool) {
	r := d.r
	var other uint64 = r.Other
	if r.SynOther != nil {
		other += *r.SynOther
	}
	ld, lo, rq := d.delta("TcpExt.ListenDrops"), d.delta("TcpExt.ListenOverflows"), d.delta("TcpExt.TCPReqQFullDrop")
	var nsOther *int64
	if ld != nil && lo != nil && rq != nil {
		v := *ld - *lo - *rq
		nsOther = &v
	}
	if other == 0 {
		return Finding{}, false
	}
	f := d.finding(KindOtherDrops, Warning, other, "connections dropped with room in the queues (not a full queue)")
	f.Evidence = []Evidence{
		ev("final ACKs that failed to become a connection with room in the accept queue", u(r.Other), "", nil),
		ev("SYNs dropped with room in the queues", r.SynOther, "", nil),
		ev("netns ListenDrops beyond ListenOverflows + TCPReqQFullDrop", nil, "TcpExt.ListenDrops", nsOther),
	}
	f.Limit = "not a queue: memory (the child socket could not be allocated), a route to the client that fails, a security module or BPF program refusing it, or, with tcp_syncookies=0, tcp_max_syn_backlog's 3/4 rule for peers not proven"
	f.Action = "look at the drop reasons: `perf trace -e skb:kfree_skb` or `tcpdrop`, and the netns's TcpExt counters (synq stats --netns); check memory pressure (TCPMemoryPressures) and routes back to the clients"
	if r.SynOther == nil {
		f.Inferred = fmt.Sprintf("the %s tier does not see why a SYN was dropped: the netns counters above are all there is for the SYN side", d.in.Frame.Tier)
	} else if r.SettledBy != "" {
		f.Inferred = d.inferredSyn()
	}
	return f, true
}
