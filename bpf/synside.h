/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/* SYN- and ACK-side logic shared by the fentry and kprobe tiers: only the
 * attach mechanism differs between them.
 *
 * tcp_conn_request() returns 0 whether the SYN was queued or dropped, and a
 * dropped SYN is consume_skb()'d, so the outcome is read from what happened
 * in between on this CPU: inet_csk_reqsk_queue_hash_add (queued),
 * cookie_v{4,6}_init_sequence (cookie sent), inet_csk_reqsk_queue_add (TFO
 * child queued), or none of them: tcp_listendrop() ran (ListenDrops). */
#ifndef SYNQ_SYNSIDE_H
#define SYNQ_SYNSIDE_H

#include "common.h"

enum { OUT_NONE, OUT_QUEUED, OUT_COOKIE };

enum { FLOOD_NONE, FLOOD_DROP, FLOOD_COOKIE };

struct syn_state {
	__u64 sk;
	__u64 mib[2]; /* this CPU's ListenOverflows, TCPReqQFullDrop at entry */
	__u32 acc_len, acc_max, syn_len, sk_drops;
	__u8 syncookies;
	__u8 outcome;
	__u8 flood; /* what tcp_syn_flood_action decided, FLOOD_* */
	__u8 have_mib;
};

/* The exact verdict: the kernel's own counters. tcp_conn_request and
 * syn_recv_sock run in softirq context and cannot be preempted, so what this
 * CPU's share of the netns' ListenOverflows and TCPReqQFullDrop gained between
 * entry and return is what this call counted. Needs __per_cpu_offset from
 * kallsyms (per_cpu_offset, 0 when unreadable) and the counters' indexes
 * from the running kernel's BTF (the loader sets all three). Without them,
 * drops are classified from queue lengths (below). */

static __always_inline bool mib_read(const struct sock *sk, __u64 out[2])
{
	__u64 off, base;
	__u32 cpu;

	if (!synq_cfg.per_cpu_offset || !synq_cfg.mib_listen_overflows || !synq_cfg.mib_reqq_full_drop)
		return false;
	cpu = bpf_get_smp_processor_id();
	if (bpf_probe_read_kernel(&off, sizeof(off), (void *)(synq_cfg.per_cpu_offset + (__u64)cpu * sizeof(__u64))))
		return false;
	base = (__u64)BPF_CORE_READ(sk, __sk_common.skc_net.net, mib.net_statistics) + off;
	if (bpf_probe_read_kernel(&out[0], sizeof(__u64), (void *)(base + synq_cfg.mib_listen_overflows * sizeof(__u64))))
		return false;
	if (bpf_probe_read_kernel(&out[1], sizeof(__u64), (void *)(base + synq_cfg.mib_reqq_full_drop * sizeof(__u64))))
		return false;
	return true;
}

/* tcp_syn_flood_action is a real function (in kallsyms, not inlined): its
 * verdict classifies drops exactly. Otherwise they are classified from the
 * queue lengths the kernel saw, with its own test for "SYN queue full":
 * qlen > max since 3479c7549fb1 (v6.13, stable backports), qlen >= max
 * before (synq_full_ge, set from the kernel version). */

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct syn_state);
} syn_state SEC(".maps");

/* Listener of the syn_recv_sock in flight on this CPU and whether its accept
 * queue was full when it started. */
struct ack_state {
	__u64 sk;
	__u64 mib[2];
	__u8 full;
	__u8 have_mib;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ack_state);
} ack_state SEC(".maps");

/* inet_csk_accept in flight: pid_tgid -> listener (kprobe tier). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u64);
} accept_sk SEC(".maps");

static __always_inline void syn_enter(const struct sock *sk)
{
	const struct inet_connection_sock *icsk = (const void *)sk;
	struct syn_state *s;
	__u32 zero = 0;

	s = bpf_map_lookup_elem(&syn_state, &zero);
	if (!s)
		return;
	s->sk = 0;
	if (!sk_wanted(sk, false))
		return;
	s->sk = (__u64)sk;
	s->acc_len = BPF_CORE_READ(sk, sk_ack_backlog);
	s->acc_max = BPF_CORE_READ(sk, sk_max_ack_backlog);
	s->syn_len = BPF_CORE_READ(icsk, icsk_accept_queue.qlen.counter);
	s->sk_drops = BPF_CORE_READ(sk, sk_drops.counter);
	s->syncookies = BPF_CORE_READ(sk, __sk_common.skc_net.net, ipv4.sysctl_tcp_syncookies);
	s->outcome = OUT_NONE;
	s->flood = FLOOD_NONE;
	s->have_mib = mib_read(sk, s->mib);
}

static __always_inline void syn_mark(const struct sock *sk, __u8 outcome)
{
	struct syn_state *s;
	__u32 zero = 0;

	s = bpf_map_lookup_elem(&syn_state, &zero);
	if (s && s->sk && (!sk || s->sk == (__u64)sk))
		s->outcome = outcome;
}

/* tcp_syn_flood_action returned: false = drop (TCPReqQFullDrop), true = send
 * a cookie. Only called when the SYN queue is full or syncookies=2. */
static __always_inline void syn_flood(bool cookie)
{
	struct syn_state *s;
	__u32 zero = 0;

	s = bpf_map_lookup_elem(&syn_state, &zero);
	if (s && s->sk)
		s->flood = cookie ? FLOOD_COOKIE : FLOOD_DROP;
}

static __always_inline struct synq_event *syn_state_event(const struct sock *sk, struct syn_state *s,
							  __u8 kind, __u32 counter)
{
	struct synq_event *e = listener_event(sk, kind, counter, false);

	if (!e)
		return NULL;
	/* depths as the kernel saw them when it decided */
	e->acc_len = s->acc_len;
	e->acc_max = s->acc_max;
	e->syn_len = s->syn_len;
	e->sk_drops = s->sk_drops;
	return e;
}

static __always_inline void syn_exit(const struct sock *sk)
{
	struct synq_event *e;
	struct syn_state *s;
	__u64 mib[2];
	__u32 zero = 0;
	__u8 reason;

	s = bpf_map_lookup_elem(&syn_state, &zero);
	if (!s || !s->sk || s->sk != (__u64)sk)
		return;
	s->sk = 0;
	max_syn_depth(sk, s->syn_len);
	e = syn_state_event(sk, s, SYNQ_KIND_SYN, SYNQ_KIND_SYN);
	if (e)
		submit(e);
	if (s->outcome == OUT_QUEUED)
		return;
	if (s->outcome == OUT_COOKIE) {
		e = syn_state_event(sk, s, SYNQ_KIND_COOKIE, SYNQ_KIND_COOKIE);
		if (e)
			submit(e);
		return;
	}
	/* Dropped. The checks of tcp_conn_request, in order: SYN queue full
	 * without cookies -> TCPReqQFullDrop; then accept queue full ->
	 * ListenOverflows; else ListenDrops alone (e.g. the syncookies=0 rule
	 * keeping the last quarter of tcp_max_syn_backlog for proven peers). */
	if (s->have_mib && mib_read(sk, mib))
		reason = mib[1] != s->mib[1] ? SYNQ_REASON_SYN_QUEUE_FULL :
			 mib[0] != s->mib[0] ? SYNQ_REASON_ACCEPT_QUEUE_FULL : SYNQ_REASON_OTHER;
	else if (synq_cfg.have_flood_action)
		reason = s->flood == FLOOD_DROP ? SYNQ_REASON_SYN_QUEUE_FULL :
			 s->acc_len > s->acc_max ? SYNQ_REASON_ACCEPT_QUEUE_FULL : SYNQ_REASON_OTHER;
	else if (s->syncookies == 0 &&
		 (s->syn_len > s->acc_max || (synq_cfg.synq_full_ge && s->syn_len == s->acc_max)))
		reason = SYNQ_REASON_SYN_QUEUE_FULL;
	else if (s->acc_len > s->acc_max)
		reason = SYNQ_REASON_ACCEPT_QUEUE_FULL;
	else
		reason = SYNQ_REASON_OTHER;
	e = syn_state_event(sk, s, SYNQ_KIND_SYN_DROP, SYNQ_CNT_DROP_SYNQ + reason - 1);
	if (!e)
		return;
	e->reason = reason;
	submit(e);
}

static __always_inline void ack_enter(const struct sock *sk)
{
	struct ack_state *a;
	__u32 zero = 0;

	a = bpf_map_lookup_elem(&ack_state, &zero);
	if (!a)
		return;
	a->sk = 0;
	if (!sk_wanted(sk, false))
		return;
	a->sk = (__u64)sk;
	a->full = BPF_CORE_READ(sk, sk_ack_backlog) > BPF_CORE_READ(sk, sk_max_ack_backlog);
	a->have_mib = mib_read(sk, a->mib);
}

/* syn_recv_sock returned: NULL is a ListenDrops; with the accept queue full
 * it is also a ListenOverflows (exit_overflow). */
static __always_inline void ack_exit(const struct sock *sk, const void *child)
{
	struct synq_event *e;
	struct ack_state *a;
	__u64 mib[2];
	__u32 zero = 0;
	bool full;

	a = bpf_map_lookup_elem(&ack_state, &zero);
	if (!a || a->sk != (__u64)sk)
		return;
	a->sk = 0;
	if (child)
		return;
	/* Without the MIB (no __per_cpu_offset in kallsyms: Debian's arm64
	 * 5.10 and 6.1 lack CONFIG_KALLSYMS_ALL), the queue as seen at entry
	 * or now: the listener is not locked, and another CPU's ACK can fill
	 * the queue between the entry and the kernel's own test, which the
	 * entry alone missed (5 ack-overflows against ListenOverflows 6 on
	 * arm64 5.10, 2 vCPUs). */
	full = a->full || BPF_CORE_READ(sk, sk_ack_backlog) > BPF_CORE_READ(sk, sk_max_ack_backlog);
	if (a->have_mib && mib_read(sk, mib))
		full = mib[0] != a->mib[0];
	if (!full) {
		count(sk, SYNQ_CNT_ACK_OTHER);
		return;
	}
	e = listener_event(sk, SYNQ_KIND_ACK_OVERFLOW, SYNQ_KIND_ACK_OVERFLOW, false);
	if (e)
		submit(e);
}

/* Listener of the inet_csk_complete_hashdance running on this CPU (final
 * ACK path). inet_csk_reqsk_queue_add is inlined into it by some builds
 * (Debian 6.12) and not by others, so both are hooked; while the outer one
 * runs, the inner one leaves the report to it. The cookie and TFO paths call
 * inet_csk_reqsk_queue_add alone. */
struct hashdance {
	__u64 sk;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hashdance);
} hashdance SEC(".maps");

static __always_inline void hashdance_enter(const struct sock *sk)
{
	struct hashdance *h;
	__u32 zero = 0;

	h = bpf_map_lookup_elem(&hashdance, &zero);
	if (h)
		h->sk = (__u64)sk;
}

/* Returns the listener of the hashdance that is ending, and clears it. */
static __always_inline __u64 hashdance_exit(void)
{
	struct hashdance *h;
	__u32 zero = 0;
	__u64 sk;

	h = bpf_map_lookup_elem(&hashdance, &zero);
	if (!h)
		return 0;
	sk = h->sk;
	h->sk = 0;
	return sk;
}

static __always_inline bool in_hashdance(void)
{
	struct hashdance *h;
	__u32 zero = 0;

	h = bpf_map_lookup_elem(&hashdance, &zero);
	return h && h->sk;
}

static __always_inline void emit_enqueue(const struct sock *sk, const struct sock *child)
{
	struct synq_event *e;
	__u64 key = (__u64)child, now;
	struct enqueued v;

	if (!child || !sk_wanted(sk, false))
		return;
	now = bpf_ktime_get_ns();
	v.time_ns = now;
	v.listener = (__u64)sk;
	v.listener_ino = 0; /* accept() checks the listener itself */
	bpf_map_update_elem(&child_enqueued, &key, &v, BPF_ANY);
	hist_depth(sk, false);
	e = listener_event(sk, SYNQ_KIND_ENQUEUE, SYNQ_KIND_ENQUEUE, false);
	if (!e)
		return;
	e->time_ns = now;
	fill_peer(e, &child->__sk_common, false);
	submit(e);
}

static __always_inline void emit_accept(const struct sock *sk, const struct sock *child)
{
	struct enqueued *t;
	struct synq_event *e;
	__u64 key, now, enq = 0;

	if (!child || !sk_wanted(sk, false))
		return;
	key = (__u64)child;
	now = bpf_ktime_get_ns();
	t = bpf_map_lookup_elem(&child_enqueued, &key);
	if (t) {
		/* The enqueue of this child at this listener: not of an earlier
		 * socket at the child's address (an entry that outlived its
		 * child), nor at another listener (a child migrated within its
		 * SO_REUSEPORT group when its listener closed). */
		if (t->listener == (__u64)sk)
			enq = t->time_ns;
		bpf_map_delete_elem(&child_enqueued, &key);
	}
	hist_latency(sk, now - enq, enq != 0);
	e = listener_event(sk, SYNQ_KIND_ACCEPT, SYNQ_KIND_ACCEPT, false);
	if (!e)
		return;
	if (enq)
		e->latency_ns = now - enq;
	else
		e->flags |= SYNQ_F_NO_LATENCY;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	fill_peer(e, &child->__sk_common, false);
	submit(e);
}

#endif
