/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/* The contract between synq's BPF programs and its Go reader. Every record the
 * kernel side sends is defined here; bpf2go's -type generates the Go structs
 * from BTF so the two sides cannot drift. */
#ifndef SYNQ_H
#define SYNQ_H

enum synq_kind {
	SYNQ_KIND_NONE = 0,
	SYNQ_KIND_SYN = 1,            /* a SYN reached the listener and was queued */
	SYNQ_KIND_SYN_DROP = 2,       /* the SYN was dropped (reason says why) */
	SYNQ_KIND_COOKIE = 3,         /* a SYN cookie was sent instead of queueing */
	SYNQ_KIND_SYNACK_RETRANS = 4, /* the SYN-ACK of a request was resent */
	SYNQ_KIND_ENQUEUE = 5,        /* handshake done, child in the accept queue */
	SYNQ_KIND_ACK_OVERFLOW = 6,   /* final ACK dropped: accept queue full */
	SYNQ_KIND_ACCEPT = 7,         /* the application accepted the child */
	SYNQ_KIND_MAX = 8,
};

enum synq_reason {
	SYNQ_REASON_NONE = 0,
	SYNQ_REASON_SYN_QUEUE_FULL = 1,    /* TCPReqQFullDrop: SYN queue full, no cookies */
	SYNQ_REASON_ACCEPT_QUEUE_FULL = 2, /* ListenOverflows on the SYN side */
	SYNQ_REASON_OTHER = 3,             /* ListenDrops without either queue full */
};

/* Flags on an event. */
#define SYNQ_F_NO_QUEUE 1   /* queue fields unknown at this hook */
#define SYNQ_F_NO_LATENCY 2 /* accept of a child enqueued before synq started */

struct synq_event {
	__u64 time_ns;    /* bpf_ktime_get_ns() */
	__u64 listener;   /* kernel address of the listener: identity only */
	__u64 latency_ns; /* accept: time since the child was enqueued */
	__u32 netns;      /* inode of the listener's network namespace */
	__u32 acc_len;    /* sk_ack_backlog */
	__u32 acc_max;    /* sk_max_ack_backlog */
	__u32 syn_len;    /* icsk_accept_queue.qlen */
	__u32 sk_drops;   /* the listener's sk_drops */
	__u32 pid;        /* tgid of the accepting task (accept only) */
	__u16 family;     /* AF_INET / AF_INET6 */
	__u16 lport;      /* host byte order */
	__u16 rport;      /* host byte order, 0 when unknown */
	__u8 kind;        /* enum synq_kind */
	__u8 reason;      /* enum synq_reason */
	__u8 laddr[16];   /* IPv4 in the first 4 bytes */
	__u8 raddr[16];
	__u32 flags;      /* SYNQ_F_* */
	char comm[16];    /* accepting task (accept only) */
};

/* Per-listener counters kept in the kernel (per CPU), exact even when the
 * event stream is lost or filtered. Index with enum synq_kind; the extra
 * slots follow it. */
enum synq_counter {
	SYNQ_CNT_DROP_SYNQ = SYNQ_KIND_MAX, /* syn-drop, syn-queue-full */
	SYNQ_CNT_DROP_ACCQ,                 /* syn-drop, accept-queue-full */
	SYNQ_CNT_DROP_OTHER,                /* syn-drop, other */
	SYNQ_CNT_RCV_DROPS,                 /* kfree_skb in tcp_v{4,6}_rcv with rx_sk = listener */
	SYNQ_CNT_ACK_OTHER,                 /* syn_recv_sock failed, accept queue not full */
	SYNQ_CNT_MAX,
};

struct synq_counts {
	__u64 n[SYNQ_CNT_MAX];
};

/* Per-listener distributions kept in the kernel, exact whatever the event
 * stream loses or samples. Log-linear buckets with SYNQ_HIST_P sub-bucket
 * bits, the layout of internal/hist with precision SYNQ_HIST_P: values below
 * 2^(P+1) have a bucket each, then 2^P buckets per power of two. The last
 * bucket also holds everything above it. */
#define SYNQ_HIST_P 2
#define SYNQ_LAT_BUCKETS 156  /* accept latency in ns, up to 2^40 ns (18 min) */
#define SYNQ_DEPTH_BUCKETS 60 /* accept queue length at enqueue, up to 2^16 */

struct synq_hist {
	__u64 latency[SYNQ_LAT_BUCKETS];
	__u64 depth[SYNQ_DEPTH_BUCKETS];
	__u64 no_latency; /* accepts of children whose enqueue was not seen */
	__u64 latency_sum_ns; /* of the accepts counted in latency[] */
};

/* A listener's exact maxima over one epoch (see struct synq_max). */
struct synq_max_slot {
	__u64 epoch;
	__u64 latency_ns; /* the longest accept latency */
	__u32 depth;      /* the deepest accept queue at an enqueue, the child included */
	/* the deepest SYN queue (icsk_accept_queue.qlen) an enqueue or a SYN saw */
	__u32 syn_depth;
	__u32 acc_pid; /* tgid of the last task that accepted from it on this CPU */
	__u32 pad;
};

/* Per listener and per CPU, beside struct synq_hist: the exact largest
 * values, which the histogram knows only to within a bucket. Two slots: the
 * reader bumps the epoch, waits an RCU grace period (every program that read
 * the old epoch has returned) and reads the old epoch's slot, which no
 * program writes again until the epoch after next. */
struct synq_max {
	struct synq_max_slot slot[2];
};

/* One listening socket, as iter/tcp sees it. */
struct synq_listener {
	__u64 listener;
	__u64 ino; /* socket inode: matches /proc/PID/fd -> socket:[ino] */
	__u32 netns;
	__u32 acc_len;
	__u32 acc_max;
	__u32 syn_len;
	__u32 syn_young;
	__u32 sk_drops;
	__u32 uid;
	__u16 family;
	__u16 lport;
	__u8 laddr[16];
};

/* Everything the loader sets before load (tracer/tracer.go): one read-only
 * global, synq_cfg in common.h, of this type, generated into Go with -type
 * so that the loader fills a struct whose fields cannot be misspelt or go
 * missing. 0 means "any" or "off" unless said otherwise. */
struct synq_config {
	/* Wake the reader only once this many bytes wait in the ring buffer;
	 * below it the reader polls on a timer. Ring-buffer wakeups are the
	 * dominant cost of tracing: batching them keeps the hot path cheap. */
	__u64 wakeup_bytes;
	/* __per_cpu_offset from kallsyms (0 when unreadable): with the two
	 * mib_* indexes, drops are classified by the kernel's own per-CPU
	 * counters (synside.h). */
	__u64 per_cpu_offset;
	/* [lo, hi) of tcp_v4_rcv and tcp_v6_rcv from kallsyms (tp.c). */
	__u64 rcv4_lo, rcv4_hi, rcv6_lo, rcv6_hi;
	__u32 filter_netns; /* inode of the only netns traced */
	/* Bit (1 << kind) set: stream that kind through the ring buffer.
	 * Counters are kept for every kind regardless. */
	__u32 kinds_mask;
	/* Stream one in sample_every syn, enqueue and accept events (0 or 1:
	 * all); drops, cookies, retransmits and overflows always go through.
	 * Counters and histograms see every event. */
	__u32 sample_every;
	/* Indexes of LINUX_MIB_LISTENOVERFLOWS and LINUX_MIB_TCPREQQFULLDROP
	 * in this kernel's struct linux_mib. */
	__u32 mib_listen_overflows;
	__u32 mib_reqq_full_drop;
	__u16 filter_port; /* the only local port traced */
	/* The sk_data_ready tracepoint exists (6.6+): enqueue events carry the
	 * listener's queue depths, and its child_enqueued record the listener. */
	__u8 have_data_ready;
	/* accept() exits find the listener through the syscall's listening fd,
	 * saved at entry: needed when enqueues do not record it. */
	__u8 accept_by_fd;
	/* accept(2) is hooked: otherwise nobody reads child_enqueued, and
	 * filling it would only churn its LRU. */
	__u8 track_accept;
	/* tcp_syn_flood_action is a real function whose verdict is hooked. */
	__u8 have_flood_action;
	/* This kernel's "SYN queue full" test is qlen >= max, not qlen > max
	 * (before 3479c7549fb1, v6.13 and its stable backports). */
	__u8 synq_full_ge;
	/* Keep listener_max (exact maxima, the SYN-queue peak, the last
	 * acceptor): a per-CPU hash lookup per enqueue, accept and SYN, paid
	 * only for readers of Tracer.Maxima (top, latency). */
	__u8 track_max;
	__u8 pad[4];
};

#endif
