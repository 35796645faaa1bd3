// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/* iter/tcp: one struct synq_listener per listening socket of the netns the
 * iterator was opened in (the kernel filters by the opener's netns). */
#include "common.h"

SEC("iter/tcp")
int iter_listeners(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	const struct inet_connection_sock *icsk;
	struct synq_listener l = {};
	const struct sock *sk;

	if (!skc)
		return 0;
	if (BPF_CORE_READ(skc, skc_state) != SYNQ_TCP_LISTEN)
		return 0;
	sk = (const struct sock *)skc;
	icsk = (const void *)sk;
	l.listener = (__u64)sk;
	l.netns = sk_netns(sk, false);
	l.family = BPF_CORE_READ(skc, skc_family);
	l.lport = BPF_CORE_READ(skc, skc_num);
	if (l.family == AF_INET6)
		BPF_CORE_READ_INTO(&l.laddr, skc, skc_v6_rcv_saddr);
	else
		BPF_CORE_READ_INTO((__u32 *)l.laddr, skc, skc_rcv_saddr);
	l.acc_len = BPF_CORE_READ(sk, sk_ack_backlog);
	l.acc_max = BPF_CORE_READ(sk, sk_max_ack_backlog);
	l.syn_len = BPF_CORE_READ(icsk, icsk_accept_queue.qlen.counter);
	l.syn_young = BPF_CORE_READ(icsk, icsk_accept_queue.young.counter);
	l.sk_drops = BPF_CORE_READ(sk, sk_drops.counter);
	l.uid = ctx->uid;
	l.ino = BPF_CORE_READ(sk, sk_socket, file, f_inode, i_ino);
	bpf_seq_write(ctx->meta->seq, &l, sizeof(l));
	return 0;
}
