/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/* Maps, configuration and helpers shared by every attach tier. Each tier is
 * its own object; the Go loader creates the maps once and hands them to every
 * object (MapReplacements), so all tiers feed one ring buffer and one set of
 * per-listener counters. */
#ifndef SYNQ_COMMON_H
#define SYNQ_COMMON_H

#include "vmlinux.h"
#ifdef __TARGET_ARCH_arm64
/* arch/arm64/include/uapi/asm/ptrace.h: the arm64 PT_REGS_* macros of
 * bpf_tracing.h read a kprobe's registers through this uapi struct, without
 * CO-RE relocation; vmlinux.h comes from an x86 kernel and lacks it (every
 * other type it has relocates on arm64 through the running kernel's BTF). */
struct user_pt_regs {
	__u64 regs[31];
	__u64 sp;
	__u64 pc;
	__u64 pstate;
};
#endif
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "synq.h"

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6

/* include/net/tcp_states.h */
#define SYNQ_TCP_ESTABLISHED 1
#define SYNQ_TCP_SYN_RECV 3
#define SYNQ_TCP_LISTEN 10

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Referenced so that BTF carries the record types for bpf2go -type. */
const struct synq_event *unused_synq_event __attribute__((unused));
const struct synq_counts *unused_synq_counts __attribute__((unused));
const struct synq_hist *unused_synq_hist __attribute__((unused));
const struct synq_max *unused_synq_max __attribute__((unused));
const struct synq_listener *unused_synq_listener __attribute__((unused));
const enum synq_kind *unused_synq_kind __attribute__((unused));
const enum synq_reason *unused_synq_reason __attribute__((unused));
const enum synq_counter *unused_synq_counter __attribute__((unused));

/* Set by the loader before load (see struct synq_config); these defaults
 * trace everything. Read-only: the verifier prunes what it turns off. */
const volatile struct synq_config synq_cfg = {
	.kinds_mask = 0xffffffff,
	.accept_by_fd = 1,
	.track_accept = 1,
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} events SEC(".maps");

/* Records that could not be reserved in the ring buffer: never silent. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

/* Keyed by the listener's kernel address. LRU: keys come from traffic. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct synq_counts);
} listener_counts SEC(".maps");

/* Keyed by the listener's kernel address, like listener_counts; one copy
 * for all CPUs (a per-CPU copy of 1.7 KiB per listener would cost MiBs per
 * CPU), updated with atomic adds. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct synq_hist);
} listener_hist SEC(".maps");

/* The value a new listener_hist entry starts from (too large for the stack). */
static const struct synq_hist zero_hist;

/* Exact maxima beside listener_hist. Per CPU: atomic compare-and-swap
 * (BPF_CMPXCHG) needs 5.12 and synq loads on 5.10; a plain max on a per-CPU
 * value is exact, and the reader takes the largest over the CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct synq_max);
} listener_max SEC(".maps");

/* The epoch the maxima are kept for, bumped by the reader (struct synq_max). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} max_epoch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SYNQ_KIND_MAX);
	__type(key, __u32);
	__type(value, __u32);
} sample_ctr SEC(".maps");

/* A child in an accept queue: when it entered, and its listener (0 when the
 * hook could not see it) with that listener's socket inode. */
struct enqueued {
	__u64 time_ns;
	__u64 listener;
	__u64 listener_ino;
};

/* Child socket -> when and where it was queued, read at accept(). Keyed by
 * the child's address, which the kernel gives to the next socket once the
 * child is freed: an entry must go when its child does (accept, or
 * tp_destroy_sock for a child freed unaccepted), and an accept checks the
 * entry against the listener it names. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct enqueued);
} child_enqueued SEC(".maps");

/* A field of a kernel object. `btf` says the pointer's BTF type is known to
 * the verifier (an argument of a tp_btf or fentry program): the read is then
 * one load instruction. Otherwise (kprobe arguments, pointers kept in maps or
 * read from memory) it is a bpf_probe_read_kernel call, ~30 ns each on the
 * benchmark machine, and a listener event makes a dozen. `btf` is a constant
 * once the helper is inlined: only one side is emitted. */
#define RD(btf, p, f) ((btf) ? (p)->f : BPF_CORE_READ(p, f))

static __always_inline bool sk_is_tcp_listener(const struct sock *sk, const bool btf)
{
	return RD(btf, sk, __sk_common.skc_state) == SYNQ_TCP_LISTEN && RD(btf, sk, sk_protocol) == IPPROTO_TCP;
}

static __always_inline __u32 sk_netns(const struct sock *sk, const bool btf)
{
	if (btf)
		return sk->__sk_common.skc_net.net->ns.inum;
	return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

/* A socket's inode number (socket:[ino] in /proc/PID/fd), 0 when it has no
 * struct socket (orphaned: closed by its owner). The inode follows the
 * struct socket in struct socket_alloc, so no file is needed. Unlike the
 * socket's address, which the kernel reuses once the socket is freed, an
 * inode number is not given to another socket while the first one lives. */
static __always_inline __u64 sk_ino(const struct sock *sk, const bool btf)
{
	struct socket *so = RD(btf, sk, sk_socket);

	if (!so)
		return 0;
	return BPF_CORE_READ((struct socket_alloc *)so, vfs_inode.i_ino);
}

/* The listener an enqueue recorded (with its inode), at accept: still the
 * same socket, not a later one at its address. Closing a listener orphans it
 * (sk_socket = NULL: inode 0) before its struct sock can be freed, and a
 * listener never gets another inode, so equal inodes mean the same open
 * listener; a listening socket always has one (kernel sockets too). */
static __always_inline bool listener_unchanged(const struct sock *sk, __u64 ino)
{
	return ino && sk_ino(sk, false) == ino;
}

/* The filters of the loader, applied before any work. */
static __always_inline bool sk_wanted(const struct sock *sk, const bool btf)
{
	if (synq_cfg.filter_port && RD(btf, sk, __sk_common.skc_num) != synq_cfg.filter_port)
		return false;
	if (synq_cfg.filter_netns && sk_netns(sk, btf) != synq_cfg.filter_netns)
		return false;
	return true;
}

static __always_inline void count(const struct sock *listener, __u32 idx)
{
	__u64 key = (__u64)listener;
	struct synq_counts *c, zero = {};

	if (idx >= SYNQ_CNT_MAX)
		return;
	c = bpf_map_lookup_elem(&listener_counts, &key);
	if (!c) {
		bpf_map_update_elem(&listener_counts, &key, &zero, BPF_NOEXIST);
		c = bpf_map_lookup_elem(&listener_counts, &key);
		if (!c)
			return;
	}
	/* per-CPU value: no atomics needed */
	c->n[idx]++;
}

/* An IPv6 address: four 32-bit loads, or one 16-byte probe read. */
static __always_inline void fill_addr6(__u8 dst[16], const struct in6_addr *a, const bool btf)
{
	__u32 *d = (__u32 *)dst;

	if (btf) {
		d[0] = a->in6_u.u6_addr32[0];
		d[1] = a->in6_u.u6_addr32[1];
		d[2] = a->in6_u.u6_addr32[2];
		d[3] = a->in6_u.u6_addr32[3];
	} else {
		bpf_core_read(dst, 16, a);
	}
}

static __always_inline void fill_listener(struct synq_event *e, const struct sock *sk, const bool btf)
{
	const struct inet_connection_sock *icsk = (const void *)sk;

	e->listener = (__u64)sk;
	e->netns = sk_netns(sk, btf);
	e->family = RD(btf, sk, __sk_common.skc_family);
	e->lport = RD(btf, sk, __sk_common.skc_num);
	if (e->family == AF_INET6)
		fill_addr6(e->laddr, &sk->__sk_common.skc_v6_rcv_saddr, btf);
	else
		*(__u32 *)e->laddr = RD(btf, sk, __sk_common.skc_rcv_saddr);
	e->acc_len = RD(btf, sk, sk_ack_backlog);
	e->acc_max = RD(btf, sk, sk_max_ack_backlog);
	/* The verifier types sk as struct sock, not the larger
	 * inet_connection_sock: this field is always probe-read. */
	e->syn_len = BPF_CORE_READ(icsk, icsk_accept_queue.qlen.counter);
	e->sk_drops = RD(btf, sk, sk_drops.counter);
}

/* The peer of a request or child socket (daddr/dport of its sock_common). */
static __always_inline void fill_peer(struct synq_event *e, const struct sock_common *skc, const bool btf)
{
	e->rport = __builtin_bswap16(RD(btf, skc, skc_dport));
	if (e->family == AF_INET6)
		fill_addr6(e->raddr, &skc->skc_v6_daddr, btf);
	else
		*(__u32 *)e->raddr = RD(btf, skc, skc_daddr);
}

static __always_inline bool kind_wanted(__u8 kind)
{
	__u32 key = kind, *n;

	if (!(synq_cfg.kinds_mask & (1u << kind)))
		return false;
	if (synq_cfg.sample_every <= 1 ||
	    (kind != SYNQ_KIND_SYN && kind != SYNQ_KIND_ENQUEUE && kind != SYNQ_KIND_ACCEPT))
		return true;
	n = bpf_map_lookup_elem(&sample_ctr, &key);
	if (!n)
		return true;
	if (++*n < synq_cfg.sample_every)
		return false;
	*n = 0;
	return true;
}

static __always_inline __u32 log2_u64(__u64 v)
{
	__u32 r = 0;

	if (v >> 32) {
		v >>= 32;
		r += 32;
	}
	if (v >> 16) {
		v >>= 16;
		r += 16;
	}
	if (v >> 8) {
		v >>= 8;
		r += 8;
	}
	if (v >> 4) {
		v >>= 4;
		r += 4;
	}
	if (v >> 2) {
		v >>= 2;
		r += 2;
	}
	if (v >> 1)
		r += 1;
	return r;
}

/* The bucket of v (see SYNQ_HIST_P), at most last. */
static __always_inline __u32 hist_bucket(__u64 v, __u32 last)
{
	__u32 e, b;

	if (v < (1u << (SYNQ_HIST_P + 1)))
		return v;
	e = log2_u64(v);
	b = ((e - SYNQ_HIST_P + 1) << SYNQ_HIST_P) + (__u32)(v >> (e - SYNQ_HIST_P)) - (1u << SYNQ_HIST_P);
	return b < last ? b : last;
}

static __always_inline struct synq_hist *listener_hist_of(const struct sock *sk)
{
	__u64 key = (__u64)sk;
	struct synq_hist *h;

	h = bpf_map_lookup_elem(&listener_hist, &key);
	if (h)
		return h;
	bpf_map_update_elem(&listener_hist, &key, &zero_hist, BPF_NOEXIST);
	return bpf_map_lookup_elem(&listener_hist, &key);
}

/* This CPU's slot of the current epoch for sk, emptied when it held an
 * older epoch. */
static __always_inline struct synq_max_slot *max_slot_of(const struct sock *sk)
{
	__u64 key = (__u64)sk, epoch = 0, *ep;
	struct synq_max *m, zero = {};
	struct synq_max_slot *s;
	__u32 k0 = 0;

	if (!synq_cfg.track_max)
		return NULL;
	ep = bpf_map_lookup_elem(&max_epoch, &k0);
	if (ep)
		epoch = *ep;
	m = bpf_map_lookup_elem(&listener_max, &key);
	if (!m) {
		bpf_map_update_elem(&listener_max, &key, &zero, BPF_NOEXIST);
		m = bpf_map_lookup_elem(&listener_max, &key);
		if (!m)
			return NULL;
	}
	s = &m->slot[epoch & 1];
	if (s->epoch != epoch) {
		s->epoch = epoch;
		s->latency_ns = 0;
		s->depth = 0;
		s->syn_depth = 0;
		s->acc_pid = 0;
	}
	return s;
}

/* The SYN queue's length seen at a hook of the listener, for its peak. */
static __always_inline void max_syn_depth(const struct sock *sk, __u32 qlen)
{
	struct synq_max_slot *m = max_slot_of(sk);

	if (m && qlen > m->syn_depth)
		m->syn_depth = qlen;
}

/* An accept: its latency, or no_latency when the enqueue was not seen. */
static __always_inline void hist_latency(const struct sock *sk, __u64 ns, bool known)
{
	struct synq_hist *h = listener_hist_of(sk);
	struct synq_max_slot *m;
	__u32 b;

	if (!h)
		return;
	/* accept runs in the accepting task (a syscall's exit, or below it) */
	m = max_slot_of(sk);
	if (m)
		m->acc_pid = bpf_get_current_pid_tgid() >> 32;
	if (!known) {
		__sync_fetch_and_add(&h->no_latency, 1);
		return;
	}
	b = hist_bucket(ns, SYNQ_LAT_BUCKETS - 1);
	/* the compiler knows b is in range; the verifier must see the check */
	asm volatile("" : "+r"(b));
	if (b < SYNQ_LAT_BUCKETS)
		__sync_fetch_and_add(&h->latency[b], 1);
	__sync_fetch_and_add(&h->latency_sum_ns, ns);
	if (m && ns > m->latency_ns)
		m->latency_ns = ns;
}

/* An enqueue: the accept queue's length with the new child in it. */
static __always_inline void hist_depth(const struct sock *sk, const bool btf)
{
	struct synq_hist *h = listener_hist_of(sk);
	struct synq_max_slot *m;
	__u32 b, depth, qlen;

	if (!h)
		return;
	depth = RD(btf, sk, sk_ack_backlog);
	b = hist_bucket(depth, SYNQ_DEPTH_BUCKETS - 1);
	asm volatile("" : "+r"(b));
	if (b < SYNQ_DEPTH_BUCKETS)
		__sync_fetch_and_add(&h->depth[b], 1);
	m = max_slot_of(sk);
	if (!m)
		return;
	if (depth > m->depth)
		m->depth = depth;
	/* The child's request has just left the SYN queue: what remains
	 * waits for its final ACK. The verifier types sk as struct sock, not
	 * the larger inet_connection_sock: a probe read. */
	qlen = BPF_CORE_READ((const struct inet_connection_sock *)sk, icsk_accept_queue.qlen.counter);
	if (qlen > m->syn_depth)
		m->syn_depth = qlen;
}

static __always_inline struct synq_event *reserve(__u8 kind)
{
	struct synq_event *e;
	__u32 zero = 0;
	__u64 *l;

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		l = bpf_map_lookup_elem(&lost, &zero);
		if (l)
			(*l)++;
		return NULL;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->time_ns = bpf_ktime_get_ns();
	e->kind = kind;
	return e;
}

/* Space a record takes in the ring buffer: 8-byte header, 8-byte aligned. */
#define SYNQ_RECORD_STRIDE ((sizeof(struct synq_event) + 8 + 7) & ~7ULL)

/* Batched wakeups (wakeup_bytes > 0): the reader is woken once per
 * wakeup_bytes of unread records, by the record that crosses a multiple of
 * it, and otherwise polls. Forcing a wakeup for every record past the
 * watermark would cost a self-IPI per record until the reader drains (~0.6 µs
 * per record measured); the default (flags 0) would never wake it, as after
 * NO_WAKEUP records this one is not the first unread. The reader's epoll is
 * level-triggered, so one wakeup per crossing is enough; crossings that two
 * CPUs step over together are caught by the next multiple or the poll. */
static __always_inline void submit(struct synq_event *e)
{
	__u64 flags = 0, avail;

	if (synq_cfg.wakeup_bytes) {
		avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
		flags = avail >= synq_cfg.wakeup_bytes && avail / synq_cfg.wakeup_bytes != (avail - SYNQ_RECORD_STRIDE) / synq_cfg.wakeup_bytes
				? BPF_RB_FORCE_WAKEUP
				: BPF_RB_NO_WAKEUP;
	}
	bpf_ringbuf_submit(e, flags);
}

/* Count the event for the listener and, if its kind is streamed, send it with
 * the listener's identity and queue depths. */
static __always_inline struct synq_event *listener_event(const struct sock *sk, __u8 kind, __u32 counter,
							   const bool btf)
{
	struct synq_event *e;

	count(sk, counter);
	if (!kind_wanted(kind))
		return NULL;
	e = reserve(kind);
	if (!e)
		return NULL;
	fill_listener(e, sk, btf);
	return e;
}

#endif
