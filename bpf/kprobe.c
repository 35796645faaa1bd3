// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/* kprobe/kretprobe tier: the same hooks as fentry.c for kernels that refuse
 * fentry (no BPF trampoline) but have CONFIG_KPROBES. Return probes do not
 * see the arguments, so entry probes stash them per CPU (softirq paths) or
 * per task (accept). */
#include "synside.h"

SEC("kprobe/tcp_conn_request")
int BPF_KPROBE(kp_conn_request, void *rsk_ops, void *af_ops, struct sock *sk)
{
	syn_enter(sk);
	return 0;
}

SEC("kretprobe/tcp_conn_request")
int BPF_KRETPROBE(krp_conn_request)
{
	struct syn_state *s;
	__u32 zero = 0;

	s = bpf_map_lookup_elem(&syn_state, &zero);
	if (s && s->sk)
		syn_exit((const struct sock *)s->sk);
	return 0;
}

SEC("kretprobe/tcp_syn_flood_action")
int BPF_KRETPROBE(krp_syn_flood, unsigned long ret)
{
	syn_flood(ret & 0xff);
	return 0;
}

SEC("kprobe/inet_csk_reqsk_queue_hash_add")
int BPF_KPROBE(kp_reqsk_hash_add, struct sock *sk)
{
	syn_mark(sk, OUT_QUEUED);
	return 0;
}

SEC("kprobe/cookie_v4_init_sequence")
int BPF_KPROBE(kp_cookie_v4)
{
	syn_mark(NULL, OUT_COOKIE);
	return 0;
}

SEC("kprobe/cookie_v6_init_sequence")
int BPF_KPROBE(kp_cookie_v6)
{
	syn_mark(NULL, OUT_COOKIE);
	return 0;
}

struct qadd {
	__u64 sk;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct qadd);
} qadd SEC(".maps");

SEC("kprobe/inet_csk_reqsk_queue_add")
int BPF_KPROBE(kp_reqsk_queue_add, struct sock *sk)
{
	struct qadd *q;
	__u32 zero = 0;

	q = bpf_map_lookup_elem(&qadd, &zero);
	if (q)
		q->sk = (__u64)sk;
	return 0;
}

SEC("kretprobe/inet_csk_reqsk_queue_add")
int BPF_KRETPROBE(krp_reqsk_queue_add, struct sock *ret)
{
	struct qadd *q;
	__u32 zero = 0;
	struct sock *sk;

	q = bpf_map_lookup_elem(&qadd, &zero);
	if (!q || !q->sk)
		return 0;
	sk = (struct sock *)q->sk;
	q->sk = 0;
	if (!ret || in_hashdance())
		return 0;
	syn_mark(sk, OUT_QUEUED);
	emit_enqueue(sk, ret);
	return 0;
}

SEC("kprobe/inet_csk_complete_hashdance")
int BPF_KPROBE(kp_complete_hashdance, struct sock *sk)
{
	hashdance_enter(sk);
	return 0;
}

SEC("kretprobe/inet_csk_complete_hashdance")
int BPF_KRETPROBE(krp_complete_hashdance, struct sock *ret)
{
	__u64 sk = hashdance_exit();

	if (sk && ret)
		emit_enqueue((const struct sock *)sk, ret);
	return 0;
}

SEC("kprobe/tcp_v4_syn_recv_sock")
int BPF_KPROBE(kp_syn_recv4, const struct sock *sk)
{
	if (BPF_CORE_READ(sk, __sk_common.skc_family) == AF_INET)
		ack_enter(sk);
	return 0;
}

SEC("kprobe/tcp_v6_syn_recv_sock")
int BPF_KPROBE(kp_syn_recv6, const struct sock *sk)
{
	ack_enter(sk);
	return 0;
}

static __always_inline void ack_ret(const void *child)
{
	struct ack_state *a;
	__u32 zero = 0;

	a = bpf_map_lookup_elem(&ack_state, &zero);
	if (a && a->sk)
		ack_exit((const struct sock *)a->sk, child);
}

SEC("kretprobe/tcp_v4_syn_recv_sock")
int BPF_KRETPROBE(krp_syn_recv4, void *ret)
{
	ack_ret(ret);
	return 0;
}

SEC("kretprobe/tcp_v6_syn_recv_sock")
int BPF_KRETPROBE(krp_syn_recv6, void *ret)
{
	ack_ret(ret);
	return 0;
}

SEC("kprobe/inet_csk_accept")
int BPF_KPROBE(kp_accept, struct sock *sk)
{
	__u64 id = bpf_get_current_pid_tgid(), v = (__u64)sk;

	bpf_map_update_elem(&accept_sk, &id, &v, BPF_ANY);
	return 0;
}

SEC("kretprobe/inet_csk_accept")
int BPF_KRETPROBE(krp_accept, struct sock *ret)
{
	__u64 id = bpf_get_current_pid_tgid(), *sk;

	sk = bpf_map_lookup_elem(&accept_sk, &id);
	if (!sk)
		return 0;
	emit_accept((const struct sock *)*sk, ret);
	bpf_map_delete_elem(&accept_sk, &id);
	return 0;
}
