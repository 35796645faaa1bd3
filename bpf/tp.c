// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/* Tracepoint programs: they load wherever BTF-typed tracepoints do, so every
 * tier uses them for what tracepoints can see (enqueue, accept latency,
 * SYN-ACK retransmits, ACK-side overflows, per-listener drop accounting).
 * The SYN side (tcp_conn_request) has no tracepoint: see fentry.c/kprobe.c. */
#include "common.h"

/* synq_cfg.rcv{4,6}_{lo,hi}: a kfree_skb in tcp_v4_rcv or tcp_v6_rcv with
 * rx_sk = a listener went through discard_and_relse, which bumped the
 * listener's sk_drops without touching ListenDrops; subtracting those from the
 * sk_drops delta leaves exactly the listener's ListenDrops. 0 = unknown.
 *
 * With the sk_data_ready tracepoint (synq_cfg.have_data_ready) enqueues
 * record the listener, so accept() exits need not find it through the
 * syscall's listening fd saved at entry (synq_cfg.accept_by_fd), and the
 * entry programs are not attached. */

struct pending_child {
	__u64 child;
	__u64 time_ns;
	__u32 netns;
	__u16 lport;
};

/* Child that just reached ESTABLISHED on this CPU, waiting for its listener's
 * sk_data_ready, which tcp_child_process() calls right after on the same CPU
 * in the same softirq. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pending_child);
} pending SEC(".maps");

/* accept()/accept4() in flight: pid_tgid -> listening fd. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u64);
} accepting SEC(".maps");

static __always_inline void enqueue_without_listener(const struct sock *child, __u64 now)
{
	struct synq_event *e;

	/* counted under listener 0: "not known" */
	count((const struct sock *)0, SYNQ_KIND_ENQUEUE);
	if (!kind_wanted(SYNQ_KIND_ENQUEUE))
		return;
	e = reserve(SYNQ_KIND_ENQUEUE);
	if (!e)
		return;
	e->time_ns = now;
	/* The child shares the listener's netns, family and port; its local
	 * address is the one the SYN was sent to. */
	fill_listener(e, child, true);
	e->listener = 0;
	e->acc_len = e->acc_max = e->syn_len = e->sk_drops = 0;
	e->flags = SYNQ_F_NO_QUEUE;
	fill_peer(e, &child->__sk_common, true);
	submit(e);
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(tp_set_state, const struct sock *sk, const int oldstate, const int newstate)
{
	struct pending_child *p;
	__u64 key = (__u64)sk, now;
	struct enqueued v = {};
	__u32 zero = 0;

	/* ~10 state changes per connection; only a child leaving SYN_RECV matters. */
	if (oldstate != SYNQ_TCP_SYN_RECV || newstate != SYNQ_TCP_ESTABLISHED)
		return 0;
	if (sk->sk_protocol != IPPROTO_TCP || !sk_wanted(sk, true))
		return 0;
	/* A client socket goes SYN_SENT -> ESTABLISHED; SYN_RECV -> ESTABLISHED
	 * is a passive child (or a simultaneous open, which has no listener: its
	 * pending slot is never claimed). */
	now = bpf_ktime_get_ns();
	if (!synq_cfg.have_data_ready) {
		v.time_ns = now;
		if (synq_cfg.track_accept)
			bpf_map_update_elem(&child_enqueued, &key, &v, BPF_ANY);
		enqueue_without_listener(sk, now);
		return 0;
	}
	p = bpf_map_lookup_elem(&pending, &zero);
	if (!p)
		return 0;
	p->child = key;
	p->time_ns = now;
	p->netns = sk_netns(sk, true);
	p->lport = sk->__sk_common.skc_num;
	return 0;
}

SEC("tp_btf/sk_data_ready")
int BPF_PROG(tp_data_ready, const struct sock *sk)
{
	struct pending_child *p;
	struct synq_event *e;
	struct enqueued v;
	__u32 zero = 0;
	__u64 child;

	/* Every readable segment of every socket runs this (the data path of
	 * keep-alive traffic): the state, one load of a typed pointer, comes
	 * before anything else. */
	if (sk->__sk_common.skc_state != SYNQ_TCP_LISTEN)
		return 0;
	p = bpf_map_lookup_elem(&pending, &zero);
	if (!p || !p->child)
		return 0;
	child = p->child;
	p->child = 0;
	if (sk->__sk_common.skc_num != p->lport || sk_netns(sk, true) != p->netns)
		return 0;
	if (synq_cfg.track_accept) {
		v.time_ns = p->time_ns;
		v.listener = (__u64)sk;
		v.listener_ino = sk_ino(sk, true);
		bpf_map_update_elem(&child_enqueued, &child, &v, BPF_ANY);
	}
	hist_depth(sk, true);
	e = listener_event(sk, SYNQ_KIND_ENQUEUE, SYNQ_KIND_ENQUEUE, true);
	if (!e)
		return 0;
	e->time_ns = p->time_ns;
	fill_peer(e, &((const struct sock *)child)->__sk_common, false);
	submit(e);
	return 0;
}

SEC("tp_btf/tcp_retransmit_synack")
int BPF_PROG(tp_synack_retrans, const struct sock *sk, const struct request_sock *req)
{
	struct synq_event *e;

	if (!sk || !sk_wanted(sk, true))
		return 0;
	e = listener_event(sk, SYNQ_KIND_SYNACK_RETRANS, SYNQ_KIND_SYNACK_RETRANS, true);
	if (!e)
		return 0;
	fill_peer(e, &req->__req_common, true);
	submit(e);
	return 0;
}

/* The socket is about to be freed (tcp_v4_destroy_sock, which IPv6 sockets
 * run too; the tracepoint exists since 4.15). A child freed unaccepted, its
 * listener closed with it queued, takes its child_enqueued entry with it:
 * otherwise the next socket the kernel allocates at its address, in any
 * netns, would be accepted with this child's enqueue. Attached on every
 * tier that records enqueues for accept(). */
SEC("tp_btf/tcp_destroy_sock")
int BPF_PROG(tp_destroy_sock, struct sock *sk)
{
	__u64 key = (__u64)sk;

	if (!sk_wanted(sk, true))
		return 0;
	/* Most sockets have no entry (clients; children accepted): a lookup
	 * takes no bucket lock, a delete does. */
	if (bpf_map_lookup_elem(&child_enqueued, &key))
		bpf_map_delete_elem(&child_enqueued, &key);
	return 0;
}

static __always_inline bool in_rcv(__u64 loc)
{
	return (loc >= synq_cfg.rcv4_lo && loc < synq_cfg.rcv4_hi) || (loc >= synq_cfg.rcv6_lo && loc < synq_cfg.rcv6_hi);
}

/* kfree_skb with the receiving socket (6.11+). Loaded only when the running
 * kernel's tracepoint has the rx_sk argument. */
SEC("tp_btf/kfree_skb")
int BPF_PROG(tp_kfree_skb, struct sk_buff *skb, void *location, enum skb_drop_reason reason,
	     struct sock *rx_sk)
{
	struct synq_event *e;
	bool overflow = false;

	if (!rx_sk)
		return 0;
	if (!sk_is_tcp_listener(rx_sk, true) || !sk_wanted(rx_sk, true))
		return 0;
	if (in_rcv((__u64)location)) {
		count(rx_sk, SYNQ_CNT_RCV_DROPS);
		/* The precise reason exists from 6.15 (a11a791ca81e); enum
		 * values differ between kernels, so ask BTF. */
		if (bpf_core_enum_value_exists(enum skb_drop_reason, SKB_DROP_REASON_TCP_LISTEN_OVERFLOW))
			overflow = reason == bpf_core_enum_value(enum skb_drop_reason,
								 SKB_DROP_REASON_TCP_LISTEN_OVERFLOW);
	} else if (synq_cfg.rcv4_lo && reason == bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_NO_SOCKET)) {
		/* A cookie ACK whose child did not fit: cookie_v{4,6}_check
		 * returns NULL and tcp_v{4,6}_do_rcv drops the ACK with
		 * NO_SOCKET (6.9+, 65be4393f363). Other NO_SOCKET drops of a
		 * listener (a bad cookie) happen with room in the queue. */
		overflow = rx_sk->sk_ack_backlog > rx_sk->sk_max_ack_backlog;
	}
	if (!overflow)
		return 0;
	e = listener_event(rx_sk, SYNQ_KIND_ACK_OVERFLOW, SYNQ_KIND_ACK_OVERFLOW, true);
	if (!e)
		return 0;
	/* skb is the final ACK: its source is the peer. */
	{
		unsigned char *head = skb->head;
		__u16 th_off = skb->transport_header;
		__u16 nh_off = skb->network_header;
		struct tcphdr th;

		if (bpf_probe_read_kernel(&th, sizeof(th), head + th_off) == 0)
			e->rport = __builtin_bswap16(th.source);
		if (e->family == AF_INET6) {
			struct ipv6hdr ip6;
			if (bpf_probe_read_kernel(&ip6, sizeof(ip6), head + nh_off) == 0)
				__builtin_memcpy(e->raddr, &ip6.saddr, 16);
		} else {
			struct iphdr ip;
			if (bpf_probe_read_kernel(&ip, sizeof(ip), head + nh_off) == 0)
				__builtin_memcpy(e->raddr, &ip.saddr, 4);
		}
	}
	submit(e);
	return 0;
}

/* accept latency: the syscall's listening fd on entry, the new fd on exit,
 * both resolved to their sockets through the task's fd table. Misses io_uring
 * and in-kernel accepts; the fentry tier uses inet_csk_accept instead. */
static __always_inline struct sock *fd_to_sock(struct task_struct *task, __u64 fd)
{
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds = BPF_CORE_READ(fdt, fd);
	unsigned int max = BPF_CORE_READ(fdt, max_fds);
	struct file *f = NULL;
	struct socket *so;

	if (fd >= max)
		return NULL;
	if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]) || !f)
		return NULL;
	so = BPF_CORE_READ(f, private_data);
	if (!so)
		return NULL;
	return BPF_CORE_READ(so, sk);
}

static __always_inline int accept_enter(__u64 fd)
{
	__u64 id = bpf_get_current_pid_tgid();

	bpf_map_update_elem(&accepting, &id, &fd, BPF_ANY);
	return 0;
}

static __always_inline int accept_exit(long ret)
{
	__u64 id = bpf_get_current_pid_tgid(), lfd = 0, *p, key, now, enq = 0, lino = 0;
	struct task_struct *task;
	struct sock *child, *sk = NULL;
	struct enqueued *t;
	struct synq_event *e;
	__u16 family;

	if (synq_cfg.accept_by_fd) {
		p = bpf_map_lookup_elem(&accepting, &id);
		if (!p)
			return 0;
		lfd = *p;
		bpf_map_delete_elem(&accepting, &id);
	}
	if (ret < 0)
		return 0;
	task = (struct task_struct *)bpf_get_current_task();
	child = fd_to_sock(task, ret);
	if (!child)
		return 0;
	key = (__u64)child;
	t = bpf_map_lookup_elem(&child_enqueued, &key);
	if (t) {
		enq = t->time_ns;
		sk = (struct sock *)t->listener;
		lino = t->listener_ino;
		bpf_map_delete_elem(&child_enqueued, &key);
		/* The enqueue named the listener (sk_data_ready): the accept is
		 * that listener's only if it still listens as the same socket.
		 * It does not when the child was migrated to another listener
		 * of its SO_REUSEPORT group (tcp_migrate_req) when that one
		 * closed, or when the entry outlived its child (a missed
		 * tp_destroy_sock run). Then neither the listener nor the
		 * latency is known. */
		if (sk && !listener_unchanged(sk, lino)) {
			sk = NULL;
			enq = 0;
		}
	}
	if (!sk && synq_cfg.accept_by_fd) {
		sk = fd_to_sock(task, lfd);
		if (!sk || !sk_is_tcp_listener(sk, false))
			return 0;
	}
	/* else: a child queued before synq attached, or not TCP at all */
	if (!sk || !sk_wanted(sk, false))
		return 0;
	family = BPF_CORE_READ(child, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return 0;
	now = bpf_ktime_get_ns();
	hist_latency(sk, now - enq, enq != 0);
	e = listener_event(sk, SYNQ_KIND_ACCEPT, SYNQ_KIND_ACCEPT, false);
	if (!e)
		return 0;
	e->time_ns = now;
	if (enq)
		e->latency_ns = now - enq;
	else
		e->flags |= SYNQ_F_NO_LATENCY;
	e->pid = id >> 32;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	fill_peer(e, &child->__sk_common, false);
	submit(e);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_accept4")
int tp_enter_accept4(struct trace_event_raw_sys_enter *ctx)
{
	return accept_enter(ctx->args[0]);
}

SEC("tracepoint/syscalls/sys_enter_accept")
int tp_enter_accept(struct trace_event_raw_sys_enter *ctx)
{
	return accept_enter(ctx->args[0]);
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int tp_exit_accept4(struct trace_event_raw_sys_exit *ctx)
{
	return accept_exit(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_accept")
int tp_exit_accept(struct trace_event_raw_sys_exit *ctx)
{
	return accept_exit(ctx->ret);
}
