package tracer

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/cilium/ebpf/btf"
)

// Tier is how synq attaches to the kernel. Better tiers see more of the
// listen path; the tracer picks the best one the kernel allows.
type Tier string

const (
	TierAuto       Tier = ""           // pick the best that loads
	TierFentry     Tier = "fentry"     // fentry/fexit: every event, lowest cost
	TierKprobe     Tier = "kprobe"     // kprobe/kretprobe: every event
	TierTracepoint Tier = "tracepoint" // tp_btf/tracepoint/iter only: no SYN-side events
)

// Tiers lists the tiers from best to last resort.
var Tiers = []Tier{TierFentry, TierKprobe, TierTracepoint}

// ParseTier accepts "auto" or a tier name.
func ParseTier(s string) (Tier, error) {
	switch s {
	case "", "auto":
		return TierAuto, nil
	case string(TierFentry), string(TierKprobe), string(TierTracepoint):
		return Tier(s), nil
	}
	return "", fmt.Errorf("unknown tier %q (want auto, fentry, kprobe or tracepoint)", s)
}

// Kinds returns the event kinds a tier can produce.
func (t Tier) Kinds() []Kind {
	if t == TierTracepoint {
		return []Kind{KindSynackRetrans, KindEnqueue, KindAckOverflow, KindAccept}
	}
	return AllKinds
}

// hook is one program of a tier and where it attaches.
type hook struct {
	obj  string // bpf2go object: tp, fentry, kprobe
	prog string // program name in that object
	// core hooks must attach for the tier to be usable; others are reported
	// when they fail and the tier goes on without them.
	core bool
	// fallback is tried when the hook does not attach: a kprobe in the
	// fentry tier (x86 BPF trampolines take at most 6 arguments before
	// 6.5, and tcp_v{4,6}_syn_recv_sock has 7 in 2026 stable kernels).
	fallback *hook
}

// kernelFeatures is what the running kernel's BTF (and, where BTF cannot
// tell, its version) says about the hooks and kernel behaviour that changed
// between versions. All version differences are decided here, in
// probeKernel; kallsyms (kallsyms.go) only says which symbols this kernel
// exposes.
type kernelFeatures struct {
	dataReady    bool // sk_data_ready tracepoint (6.6+)
	kfreeRxSk    bool // kfree_skb tracepoint with rx_sk (6.11+)
	acceptArgs   int  // parameters of inet_csk_accept: 4 up to 6.9, 2 from 6.10
	synRecv4Args int  // tcp_v4_syn_recv_sock: 6, or 7 with opt_child_init (2026 stable)
	synRecv6Args int
	haveSynRecv6 bool // in BTF: fentry/fexit can attach
	haveCookieV6 bool
	// kprobes can attach (kallsyms lists them, or BTF has them): see
	// Tracer.kprobeTarget.
	kprobeSynRecv6, kprobeCookieV6 bool
	// SKB_DROP_REASON_TCP_LISTEN_OVERFLOW (6.15+): kfree_skb names ACK-side
	// overflows.
	listenOverflowReason bool
	// tcp_syn_flood_action is a function of its own (not inlined): its
	// verdict tells syn-queue-full drops from accept-queue-full ones.
	synFloodAction bool
	// Indexes of LINUX_MIB_LISTENOVERFLOWS and LINUX_MIB_TCPREQQFULLDROP in
	// struct linux_mib on this kernel (an anonymous enum in BTF; 0 = absent).
	mibListenOverflows, mibReqQFullDrop uint32
	// reqQueueFullFixed: the SYN queue is full when qlen > max, not
	// qlen >= max (see reqQueueFullFixed). Behaviour, not a type: only the
	// version tells.
	reqQueueFullFixed bool
	// wantAccept: the configuration streams accept events (the tracepoint
	// tier hooks accept(2) only then).
	wantAccept bool
}

func funcParams(spec *btf.Spec, name string) (int, bool) {
	var fn *btf.Func
	if err := spec.TypeByName(name, &fn); err != nil {
		return 0, false
	}
	proto, ok := fn.Type.(*btf.FuncProto)
	if !ok {
		return 0, false
	}
	return len(proto.Params), true
}

// tracepointArgs counts the arguments of a BTF-typed tracepoint from its
// btf_trace_<name> typedef (minus the leading context pointer).
func tracepointArgs(spec *btf.Spec, name string) (int, bool) {
	var td *btf.Typedef
	if err := spec.TypeByName("btf_trace_"+name, &td); err != nil {
		return 0, false
	}
	ptr, ok := td.Type.(*btf.Pointer)
	if !ok {
		return 0, false
	}
	proto, ok := ptr.Target.(*btf.FuncProto)
	if !ok {
		return 0, false
	}
	return len(proto.Params) - 1, true
}

// probeKernel reads the features of the kernel with BTF spec and upstream
// version (kernelVersion).
func probeKernel(spec *btf.Spec, version [3]int) kernelFeatures {
	var f kernelFeatures
	f.reqQueueFullFixed = reqQueueFullFixed(version)
	if n, ok := tracepointArgs(spec, "sk_data_ready"); ok && n == 1 {
		f.dataReady = true
	}
	if n, ok := tracepointArgs(spec, "kfree_skb"); ok && n >= 4 {
		f.kfreeRxSk = true
	}
	f.acceptArgs, _ = funcParams(spec, "inet_csk_accept")
	f.synRecv4Args, _ = funcParams(spec, "tcp_v4_syn_recv_sock")
	f.synRecv6Args, f.haveSynRecv6 = funcParams(spec, "tcp_v6_syn_recv_sock")
	_, f.haveCookieV6 = funcParams(spec, "cookie_v6_init_sequence")
	_, f.synFloodAction = funcParams(spec, "tcp_syn_flood_action")
	f.mibListenOverflows, f.mibReqQFullDrop = mibIndexes(spec)
	var reasons *btf.Enum
	if err := spec.TypeByName("skb_drop_reason", &reasons); err == nil {
		for _, v := range reasons.Values {
			if v.Name == "SKB_DROP_REASON_TCP_LISTEN_OVERFLOW" {
				f.listenOverflowReason = true
			}
		}
	}
	return f
}

// probe is probeKernel completed by what kallsyms says and by the
// configuration.
func (t *Tracer) probe(spec *btf.Spec, version [3]int) kernelFeatures {
	f := probeKernel(spec, version)
	f.wantAccept = t.cfg.Kinds == nil || slices.Contains(t.cfg.Kinds, KindAccept) || t.cfg.AcceptLatency
	f.synFloodAction = f.synFloodAction && t.haveSymbol("tcp_syn_flood_action")
	f.kprobeSynRecv6 = t.kprobeTarget("tcp_v6_syn_recv_sock", f.haveSynRecv6)
	f.kprobeCookieV6 = t.kprobeTarget("cookie_v6_init_sequence", f.haveCookieV6)
	return f
}

// hooks returns the programs of a tier on this kernel.
func (t Tier) hooks(f kernelFeatures) ([]hook, error) {
	var hs []hook
	add := func(obj, prog string, core bool) { hs = append(hs, hook{obj: obj, prog: prog, core: core}) }
	// Tracepoints every tier uses.
	add("tp", "tp_synack_retrans", false)
	// A child freed unaccepted takes its enqueue record with it, so that
	// no later socket at its address is accepted with it: wherever accepts
	// are hooked (the tracepoint tier hooks them only on demand).
	if t != TierTracepoint || f.wantAccept {
		add("tp", "tp_destroy_sock", false)
	}
	switch t {
	case TierTracepoint:
		add("tp", "tp_set_state", true)
		if f.dataReady {
			add("tp", "tp_data_ready", false)
		}
		if f.kfreeRxSk {
			add("tp", "tp_kfree_skb", false)
		}
		// With sk_data_ready the enqueue records the child's listener and
		// the accept exit needs nothing else; without it, the exit finds
		// the listener through the listening fd saved at entry.
		if !f.dataReady {
			add("tp", "tp_enter_accept4", false)
			add("tp", "tp_enter_accept", false)
		}
		// accept(2) is seen through the syscall tracepoints, which put
		// every syscall of every task on the host on the slow path while
		// attached (~6% more CPU under connection churn with even an empty
		// program, docs/benchmarks.md): only when accepts are streamed.
		if f.wantAccept {
			add("tp", "tp_exit_accept4", false)
			add("tp", "tp_exit_accept", false)
		} else {
			hs = slices.DeleteFunc(hs, func(h hook) bool { return strings.HasPrefix(h.prog, "tp_enter_accept") })
		}
	case TierFentry:
		add("fentry", "fe_conn_request", true)
		add("fentry", "fx_conn_request", true)
		add("fentry", "fe_reqsk_hash_add", true)
		if f.synFloodAction {
			add("fentry", "fx_syn_flood", true)
		}
		add("fentry", "fe_cookie_v4", false)
		if f.haveCookieV6 {
			add("fentry", "fe_cookie_v6", false)
		} else if f.kprobeCookieV6 { // not in BTF: no fentry, a kprobe still attaches
			add("kprobe", "kp_cookie_v6", false)
		}
		add("fentry", "fx_reqsk_queue_add", false)
		add("fentry", "fe_complete_hashdance", false)
		add("fentry", "fx_complete_hashdance", false)
		withKprobe := func(prog, kp string) {
			add("fentry", prog, false)
			hs[len(hs)-1].fallback = &hook{obj: "kprobe", prog: kp}
		}
		withKprobe("fe_syn_recv4", "kp_syn_recv4")
		a, err := variant("tcp_v4_syn_recv_sock", f.synRecv4Args, 6, 7)
		if err != nil {
			return nil, err
		}
		withKprobe("fx_syn_recv4_a"+a, "krp_syn_recv4")
		if f.haveSynRecv6 {
			withKprobe("fe_syn_recv6", "kp_syn_recv6")
			a, err := variant("tcp_v6_syn_recv_sock", f.synRecv6Args, 6, 7)
			if err != nil {
				return nil, err
			}
			withKprobe("fx_syn_recv6_a"+a, "krp_syn_recv6")
		} else if f.kprobeSynRecv6 {
			add("kprobe", "kp_syn_recv6", false)
			add("kprobe", "krp_syn_recv6", false)
		}
		a, err = variant("inet_csk_accept", f.acceptArgs, 4, 2)
		if err != nil {
			return nil, err
		}
		add("fentry", "fx_accept_a"+a, false)
	case TierKprobe:
		for _, p := range []string{"kp_conn_request", "krp_conn_request", "kp_reqsk_hash_add"} {
			add("kprobe", p, true)
		}
		if f.synFloodAction {
			add("kprobe", "krp_syn_flood", true)
		}
		add("kprobe", "kp_cookie_v4", false)
		if f.kprobeCookieV6 {
			add("kprobe", "kp_cookie_v6", false)
		}
		for _, p := range []string{"kp_reqsk_queue_add", "krp_reqsk_queue_add", "kp_complete_hashdance",
			"krp_complete_hashdance", "kp_syn_recv4", "krp_syn_recv4"} {
			add("kprobe", p, false)
		}
		if f.kprobeSynRecv6 {
			add("kprobe", "kp_syn_recv6", false)
			add("kprobe", "krp_syn_recv6", false)
		}
		add("kprobe", "kp_accept", false)
		add("kprobe", "krp_accept", false)
	default:
		return nil, fmt.Errorf("no hooks for tier %q", t)
	}
	return hs, nil
}

func variant(fn string, n int, known ...int) (string, error) {
	for _, k := range known {
		if n == k {
			return fmt.Sprint(k), nil
		}
	}
	if n == 0 {
		return "", fmt.Errorf("%s is not in this kernel's BTF", fn)
	}
	return "", fmt.Errorf("%s has %d parameters in this kernel's BTF; synq knows %v", fn, n, known)
}

// mibIndexes finds the per-netns MIB counters' indexes in the running
// kernel's BTF: the enum is uapi but anonymous, so CO-RE cannot relocate it.
func mibIndexes(spec *btf.Spec) (overflows, reqQFull uint32) {
	for typ, err := range spec.All() {
		if err != nil {
			break
		}
		e, ok := typ.(*btf.Enum)
		if !ok || e.Name != "" {
			continue
		}
		var o, q uint32
		for _, v := range e.Values {
			switch v.Name {
			case "LINUX_MIB_LISTENOVERFLOWS":
				o = uint32(v.Value)
			case "LINUX_MIB_TCPREQQFULLDROP":
				q = uint32(v.Value)
			}
		}
		if o != 0 && q != 0 {
			return o, q
		}
	}
	return 0, 0
}

// kernelVersion is the running kernel's upstream version: Debian's uname -r
// says 5.10.0-32, its /proc/version names the stable release (5.10.223).
func kernelVersion() [3]int {
	b, _ := os.ReadFile("/proc/version")
	// The last match: the compiler's version ("gcc-10 (Debian 10.2.1-6)")
	// comes first.
	if m := debianVersion.FindAllSubmatch(b, -1); m != nil {
		return parseVersion(string(m[len(m)-1][1]))
	}
	return parseVersion(kernelRelease())
}

var debianVersion = regexp.MustCompile(`Debian (\d+\.\d+\.\d+)`)

func parseVersion(s string) (v [3]int) {
	for i, f := range strings.SplitN(s, ".", 3) {
		n := 0
		for _, c := range f {
			if c < '0' || c > '9' {
				break
			}
			n = n*10 + int(c-'0')
		}
		v[i] = n
	}
	return v
}

// reqQueueFullFixed: inet_csk_reqsk_queue_is_full() tests qlen > max, not
// qlen >= max (3479c7549fb1, v6.13, and its stable backports). Thresholds
// from the stable branches' backports; seen in our VMs: 5.10.223 without,
// 6.1.192 and 6.12.117 with.
func reqQueueFullFixed(v [3]int) bool {
	minor := map[[2]int]int{{6, 12}: 10, {6, 6}: 70, {6, 1}: 125, {5, 15}: 177, {5, 10}: 234}
	if z, ok := minor[[2]int{v[0], v[1]}]; ok {
		return v[2] >= z
	}
	return v[0] > 6 || (v[0] == 6 && v[1] >= 13)
}
