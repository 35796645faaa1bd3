package tracer

import (
	"bytes"
	"os"
	"slices"
	"testing"

	"github.com/cilium/ebpf/btf"
)

// btfWithFuncs is a raw BTF blob with a function of n pointer parameters per
// name, loaded as a kernel's spec.
func btfWithFuncs(t *testing.T, funcs map[string]int) *btf.Spec {
	t.Helper()
	b, err := btf.NewBuilder(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ptr := &btf.Pointer{Target: &btf.Void{}}
	for name, n := range funcs {
		proto := &btf.FuncProto{Return: ptr}
		for range n {
			proto.Params = append(proto.Params, btf.FuncParam{Name: "p", Type: ptr})
		}
		if _, err := b.Add(&btf.Func{Name: name, Type: proto, Linkage: btf.GlobalFunc}); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := b.Marshal(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := btf.LoadSpecFromReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

func progs(hs []hook) []string {
	var out []string
	for _, h := range hs {
		out = append(out, h.obj+"/"+h.prog)
	}
	return out
}

// Whether a kprobe can attach is kallsyms' call, not BTF's: Debian's 5.10
// arm64 BTF lacks tcp_v6_syn_recv_sock (and here cookie_v6_init_sequence),
// its kallsyms lists them, and without kp_syn_recv6 the kprobe tier counted
// 0 IPv6 ACK overflows against ListenOverflows 7. A kallsyms without them
// (IPv6 compiled out) keeps them out; one with hidden addresses
// (kptr_restrict) or in a module still names them.
func TestKprobeTargetFromKallsyms(t *testing.T) {
	spec := btfWithFuncs(t, map[string]int{"tcp_v4_syn_recv_sock": 6, "inet_csk_accept": 4, "tcp_conn_request": 4})
	v6 := []string{"kprobe/kp_syn_recv6", "kprobe/krp_syn_recv6", "kprobe/kp_cookie_v6"}
	for _, c := range []struct {
		name, kallsyms string
		want           bool
	}{
		{"listed", "ffff800010a3c2d8 T tcp_v6_syn_recv_sock\nffff800010a41000 T cookie_v6_init_sequence\nffff800010a42000 t tcp_v6_fill_cb\n", true},
		{"kptr_restrict", "0000000000000000 T tcp_v6_syn_recv_sock\n0000000000000000 T cookie_v6_init_sequence\n", true},
		{"module", "ffffffffc0a3c2d8 t tcp_v6_syn_recv_sock\t[ipv6]\nffffffffc0a41000 t cookie_v6_init_sequence\t[ipv6]\n", true},
		{"absent", "ffff800010a3c2d8 T tcp_v4_syn_recv_sock\nffff800010a41000 D tcp_v6_syn_recv_sock_data\n", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := t.TempDir() + "/kallsyms"
			if err := os.WriteFile(p, []byte(c.kallsyms), 0o644); err != nil {
				t.Fatal(err)
			}
			tr := &Tracer{cfg: Config{KallsymsPath: p}}
			f := tr.probe(spec, [3]int{5, 10, 223})
			if f.haveSynRecv6 || f.haveCookieV6 {
				t.Fatalf("BTF without the IPv6 functions: haveSynRecv6 %v, haveCookieV6 %v", f.haveSynRecv6, f.haveCookieV6)
			}
			for _, tier := range []Tier{TierKprobe, TierFentry} {
				hs, err := tier.hooks(f)
				if err != nil {
					t.Fatal(err)
				}
				got := progs(hs)
				for _, p := range v6 {
					if slices.Contains(got, p) != c.want {
						t.Errorf("tier %s: %s attached %v, want %v (hooks %v)", tier, p, !c.want, c.want, got)
					}
				}
			}
		})
	}
}
