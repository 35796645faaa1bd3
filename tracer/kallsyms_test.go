package tracer

import (
	"maps"
	"os"
	"testing"
)

func TestTextRanges(t *testing.T) {
	p := t.TempDir() + "/kallsyms"
	syms := "ffffffff81000000 T _stext\n" +
		"ffffffff81a00100 T tcp_v4_rcv\n" +
		"ffffffff81a00900 t tcp_v4_fill_cb\n" +
		"ffffffffc0001000 t tcp_v6_rcv\t[ipv6]\n" + // a module's, not the kernel's
		"ffffffff81b00000 T tcp_v6_rcv\n" +
		"ffffffff81b00400 D some_data\n" +
		"0000000000000000 T tcp_syn_flood_action\n" // kptr_restrict
	if err := os.WriteFile(p, []byte(syms), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := textRanges(p, kallsymsNames...)
	if err == nil {
		t.Error("no error for tcp_syn_flood_action at address 0")
	}
	want := map[string]symRange{
		"tcp_v4_rcv": {0xffffffff81a00100, 0xffffffff81a00900},
		"tcp_v6_rcv": {0xffffffff81b00000, 0xffffffff81b00400},
	}
	if !maps.Equal(r, want) {
		t.Errorf("textRanges = %x, want %x", r, want)
	}
	tr := &Tracer{cfg: Config{KallsymsPath: p}}
	if !tr.haveSymbol("tcp_v4_rcv") || tr.haveSymbol("tcp_syn_flood_action") {
		t.Errorf("haveSymbol: tcp_v4_rcv %v, tcp_syn_flood_action %v", tr.haveSymbol("tcp_v4_rcv"), tr.haveSymbol("tcp_syn_flood_action"))
	}
	if _, ok := tr.rcvRanges(); !ok {
		t.Error("rcvRanges: not ok with tcp_v4_rcv present")
	}
}
