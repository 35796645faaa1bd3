package tracer

import (
	"fmt"

	"github.com/cilium/ebpf"
)

// loadConfig is struct synq_config (bpf/synq.h) for cfg on a kernel with
// features f and kallsyms syms: the value of every object's synq_cfg. bpf2go
// generates the struct from the objects' BTF, so a field the BPF side reads
// cannot be misspelt here; TestLoadConfig checks that none is left unset.
func loadConfig(cfg Config, f kernelFeatures, syms map[string]symRange) tpSynqConfig {
	var mask uint32
	if cfg.Kinds == nil {
		mask = ^uint32(0)
	}
	for _, k := range cfg.Kinds {
		mask |= 1 << k
	}
	c := tpSynqConfig{
		WakeupBytes:        cfg.WakeupBytes,
		Rcv4Lo:             syms["tcp_v4_rcv"].lo,
		Rcv4Hi:             syms["tcp_v4_rcv"].hi,
		Rcv6Lo:             syms["tcp_v6_rcv"].lo,
		Rcv6Hi:             syms["tcp_v6_rcv"].hi,
		FilterNetns:        cfg.Netns,
		KindsMask:          mask,
		SampleEvery:        cfg.SampleEvery,
		MibListenOverflows: f.mibListenOverflows,
		MibReqqFullDrop:    f.mibReqQFullDrop,
		FilterPort:         cfg.Port,
		HaveDataReady:      flag(f.dataReady),
		AcceptByFd:         flag(!f.dataReady),
		TrackAccept:        flag(f.wantAccept),
		HaveFloodAction:    flag(f.synFloodAction),
		SynqFullGe:         flag(!f.reqQueueFullFixed),
		TrackMax:           flag(!cfg.NoMaxima),
	}
	// Exact drop reasons need all three (synside.h mib_read).
	if f.mibListenOverflows != 0 && f.mibReqQFullDrop != 0 {
		c.PerCpuOffset = syms["__per_cpu_offset"].lo
	}
	return c
}

func flag(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// assignCfg assigns an object's generated variable specs and picks its
// synq_cfg out of them.
func assignCfg[S any](spec *ebpf.CollectionSpec, cfg func(*S) *ebpf.VariableSpec) (*ebpf.VariableSpec, error) {
	var s S
	if err := spec.Assign(&s); err != nil {
		return nil, err
	}
	return cfg(&s), nil
}

// configVariable is the synq_cfg variable of one embedded object, found
// through bpf2go's generated variable specs: renaming it in bpf/ breaks the
// build, not the configuration.
func configVariable(obj string, spec *ebpf.CollectionSpec) (*ebpf.VariableSpec, error) {
	var v *ebpf.VariableSpec
	var err error
	switch obj {
	case "tp":
		v, err = assignCfg(spec, func(s *tpVariableSpecs) *ebpf.VariableSpec { return s.SynqCfg })
	case "fentry":
		v, err = assignCfg(spec, func(s *fentryVariableSpecs) *ebpf.VariableSpec { return s.SynqCfg })
	case "kprobe":
		v, err = assignCfg(spec, func(s *kprobeVariableSpecs) *ebpf.VariableSpec { return s.SynqCfg })
	case "iter":
		v, err = assignCfg(spec, func(s *iterVariableSpecs) *ebpf.VariableSpec { return s.SynqCfg })
	default:
		return nil, fmt.Errorf("no object %q", obj)
	}
	if err != nil {
		return nil, err
	}
	return v, nil
}
