// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/* fentry/fexit tier: the SYN side, ACK-side overflows, enqueue and accept at
 * their kernel functions. Variants whose argument count differs between
 * kernels are chosen by the loader from the running kernel's BTF. */
#include "synside.h"

SEC("fentry/tcp_conn_request")
int BPF_PROG(fe_conn_request, struct request_sock_ops *rsk_ops, const struct tcp_request_sock_ops *af_ops,
	     struct sock *sk)
{
	syn_enter(sk);
	return 0;
}

SEC("fexit/tcp_conn_request")
int BPF_PROG(fx_conn_request, struct request_sock_ops *rsk_ops, const struct tcp_request_sock_ops *af_ops,
	     struct sock *sk)
{
	syn_exit(sk);
	return 0;
}

SEC("fexit/tcp_syn_flood_action")
int BPF_PROG(fx_syn_flood, const struct sock *sk, const char *proto, bool ret)
{
	syn_flood(ret);
	return 0;
}

SEC("fentry/inet_csk_reqsk_queue_hash_add")
int BPF_PROG(fe_reqsk_hash_add, struct sock *sk)
{
	syn_mark(sk, OUT_QUEUED);
	return 0;
}

SEC("fentry/cookie_v4_init_sequence")
int BPF_PROG(fe_cookie_v4)
{
	syn_mark(NULL, OUT_COOKIE);
	return 0;
}

SEC("fentry/cookie_v6_init_sequence")
int BPF_PROG(fe_cookie_v6)
{
	syn_mark(NULL, OUT_COOKIE);
	return 0;
}

/* Every child enters the accept queue here: after the final ACK, after a
 * valid cookie ACK, and for TFO straight from tcp_conn_request. */
SEC("fexit/inet_csk_reqsk_queue_add")
int BPF_PROG(fx_reqsk_queue_add, struct sock *sk, struct request_sock *req, struct sock *child,
	     struct sock *ret)
{
	if (!ret || in_hashdance())
		return 0;
	syn_mark(sk, OUT_QUEUED); /* TFO: the SYN itself made a child */
	emit_enqueue(sk, ret);
	return 0;
}

/* The final ACK's path: returns the child once it is in the accept queue. */
SEC("fentry/inet_csk_complete_hashdance")
int BPF_PROG(fe_complete_hashdance, struct sock *sk)
{
	hashdance_enter(sk);
	return 0;
}

SEC("fexit/inet_csk_complete_hashdance")
int BPF_PROG(fx_complete_hashdance, struct sock *sk, struct sock *child, struct request_sock *req,
	     bool own_req, struct sock *ret)
{
	hashdance_exit();
	if (ret)
		emit_enqueue(sk, ret);
	return 0;
}

SEC("fentry/tcp_v4_syn_recv_sock")
int BPF_PROG(fe_syn_recv4, const struct sock *sk)
{
	/* v4-mapped connections on a v6 listener come through
	 * tcp_v6_syn_recv_sock first: count them there only. */
	if (BPF_CORE_READ(sk, __sk_common.skc_family) == AF_INET)
		ack_enter(sk);
	return 0;
}

SEC("fentry/tcp_v6_syn_recv_sock")
int BPF_PROG(fe_syn_recv6, const struct sock *sk)
{
	ack_enter(sk);
	return 0;
}

/* syn_recv_sock has 6 arguments, 7 since 858d2a4f67ff (2026, in stable
 * 6.1.192, 6.12.117, 6.18.44): the return value's slot moves. */
SEC("fexit/tcp_v4_syn_recv_sock")
int BPF_PROG(fx_syn_recv4_a6, const struct sock *sk, void *a1, void *a2, void *a3, void *a4, void *a5,
	     struct sock *ret)
{
	ack_exit(sk, ret);
	return 0;
}

SEC("fexit/tcp_v4_syn_recv_sock")
int BPF_PROG(fx_syn_recv4_a7, const struct sock *sk, void *a1, void *a2, void *a3, void *a4, void *a5,
	     void *a6, struct sock *ret)
{
	ack_exit(sk, ret);
	return 0;
}

SEC("fexit/tcp_v6_syn_recv_sock")
int BPF_PROG(fx_syn_recv6_a6, const struct sock *sk, void *a1, void *a2, void *a3, void *a4, void *a5,
	     struct sock *ret)
{
	ack_exit(sk, ret);
	return 0;
}

SEC("fexit/tcp_v6_syn_recv_sock")
int BPF_PROG(fx_syn_recv6_a7, const struct sock *sk, void *a1, void *a2, void *a3, void *a4, void *a5,
	     void *a6, struct sock *ret)
{
	ack_exit(sk, ret);
	return 0;
}

/* inet_csk_accept is (sk, flags, err, kern) up to 6.9 and
 * (sk, struct proto_accept_arg *) from 6.10 (92ef0fd55ac8). */
SEC("fexit/inet_csk_accept")
int BPF_PROG(fx_accept_a4, struct sock *sk, int flags, int *err, bool kern, struct sock *ret)
{
	emit_accept(sk, ret);
	return 0;
}

SEC("fexit/inet_csk_accept")
int BPF_PROG(fx_accept_a2, struct sock *sk, void *arg, struct sock *ret)
{
	emit_accept(sk, ret);
	return 0;
}
