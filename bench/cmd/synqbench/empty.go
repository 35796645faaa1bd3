package main

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// runEmpty attaches empty programs (r0 = 0; exit) where the tracepoint tier
// attaches its own: what the kernel charges any program there, with
// kernel.bpf_stats_enabled's two clock reads per run included. It is the
// floor under every ns/run in the table; synq's cost per hook is its ns/run
// minus this. With onlyAccept, only the syscall tracepoint gets one: what
// hooking accept(2) costs on this tier before any program does anything.
func runEmpty(c config, w workload, x *run1, onlyAccept bool) error {
	insns := asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}
	progs := map[string]*ebpf.Program{}
	var links []link.Link
	defer func() {
		for _, l := range links {
			l.Close()
		}
		for _, p := range progs {
			p.Close()
		}
	}()
	// Every tp_btf hook synq's tracepoint tier attaches (tp.c).
	btfHooks := []string{"inet_sock_set_state", "sk_data_ready", "tcp_destroy_sock", "kfree_skb", "tcp_retransmit_synack"}
	if onlyAccept {
		btfHooks = nil
	}
	for _, tp := range btfHooks {
		p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "empty_" + tp[:min(len(tp), 9)], Type: ebpf.Tracing,
			AttachType: ebpf.AttachTraceRawTp, AttachTo: tp, Instructions: insns, License: "GPL"})
		if err != nil {
			if tp == "sk_data_ready" {
				continue // 6.6+
			}
			return fmt.Errorf("empty tp_btf/%s: %w", tp, err)
		}
		progs["tp_btf/"+tp] = p
		l, err := link.AttachTracing(link.TracingOptions{Program: p})
		if err != nil {
			return fmt.Errorf("attach empty tp_btf/%s: %w", tp, err)
		}
		links = append(links, l)
	}
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "empty_exit_acc", Type: ebpf.TracePoint,
		Instructions: insns, License: "GPL"})
	if err != nil {
		return fmt.Errorf("empty tracepoint: %w", err)
	}
	progs["tracepoint/sys_exit_accept4"] = p
	l, err := link.Tracepoint("syscalls", "sys_exit_accept4", p, nil)
	if err != nil {
		return fmt.Errorf("attach empty tracepoint/syscalls/sys_exit_accept4: %w", err)
	}
	links = append(links, l)

	stats := func() map[string]progNs {
		out := map[string]progNs{}
		for name, p := range progs {
			if st, err := p.Stats(); err == nil {
				out[name] = progNs{runs: st.RunCount, ns: st.Runtime}
			}
		}
		return out
	}
	before := stats()
	x.connS, x.overflows, x.cpu = w.run(c.dur)
	after := stats()
	x.progs = map[string]progNs{}
	for name, a := range after {
		b := before[name]
		x.progs[name] = progNs{runs: a.runs - b.runs, ns: a.ns - b.ns}
	}
	return nil
}
