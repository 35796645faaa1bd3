package tracer

import (
	"encoding/binary"
	"reflect"
	"testing"

	"github.com/cilium/ebpf/btf"
)

// Every field of struct synq_config is set by loadConfig from an input: with
// every input on, and with every input off, each field takes two different
// values. A field added to bpf/synq.h and forgotten here stays zero in both.
func TestLoadConfig(t *testing.T) {
	syms := map[string]symRange{
		"tcp_v4_rcv": {0xffffffff81a00100, 0xffffffff81a00900}, "tcp_v6_rcv": {0xffffffff81b00000, 0xffffffff81b00400},
		"__per_cpu_offset": {0xffffffff82e00000, 0xffffffff82e00400},
	}
	on := loadConfig(Config{Netns: 4026531840, Port: 8080, SampleEvery: 10, WakeupBytes: 64 << 10},
		kernelFeatures{dataReady: true, wantAccept: true, synFloodAction: true, reqQueueFullFixed: false,
			mibListenOverflows: 20, mibReqQFullDrop: 61}, syms)
	off := loadConfig(Config{Kinds: []Kind{}, NoMaxima: true}, kernelFeatures{reqQueueFullFixed: true}, nil)
	von, voff := reflect.ValueOf(on), reflect.ValueOf(off)
	for i := range von.NumField() {
		f := von.Type().Field(i)
		if f.Name == "_" || f.Name == "Pad" {
			continue
		}
		if von.Field(i).Equal(voff.Field(i)) {
			t.Errorf("synq_config.%s is %v with every input on and with every input off: loadConfig does not set it", f.Name, von.Field(i))
		}
	}
	if on.KindsMask != ^uint32(0) || off.KindsMask != 0 {
		t.Errorf("kinds_mask %#x for every kind, %#x for none", on.KindsMask, off.KindsMask)
	}
	streamed := loadConfig(Config{Kinds: []Kind{KindAccept, KindSynDrop}}, kernelFeatures{}, nil)
	if want := uint32(1<<KindAccept | 1<<KindSynDrop); streamed.KindsMask != want {
		t.Errorf("kinds_mask %#x for accept and syn-drop, want %#x", streamed.KindsMask, want)
	}
	// Exact drop reasons need both MIB indexes as well as __per_cpu_offset.
	half := loadConfig(Config{}, kernelFeatures{mibListenOverflows: 20}, syms)
	if half.PerCpuOffset != 0 {
		t.Error("per_cpu_offset set without the TCPReqQFullDrop index")
	}
}

// Every embedded object has synq_cfg of type struct synq_config, the size of
// the Go struct, and takes a value.
func TestConfigVariables(t *testing.T) {
	specs, err := loadSpecs()
	if err != nil {
		t.Fatal(err)
	}
	want := loadConfig(Config{Netns: 7, Port: 80}, kernelFeatures{dataReady: true}, nil)
	for name, spec := range specs {
		v, err := configVariable(name, spec)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		var st *btf.Struct
		if v.Type == nil || !asStruct(v.Type.Type, &st) || st.Name != "synq_config" {
			t.Errorf("%s: synq_cfg has type %v, want struct synq_config", name, v.Type)
		}
		if int(v.Size()) != binary.Size(want) {
			t.Errorf("%s: synq_cfg is %d bytes, the Go struct %d", name, v.Size(), binary.Size(want))
		}
		if !v.Constant() {
			t.Errorf("%s: synq_cfg is in %s, not a read-only section", name, v.SectionName)
		}
		if err := v.Set(want); err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		var got tpSynqConfig
		if err := v.Get(&got); err != nil || got != want {
			t.Errorf("%s: synq_cfg reads back %+v (%v), want %+v", name, got, err, want)
		}
	}
}

// asStruct strips qualifiers (const volatile) down to a struct.
func asStruct(typ btf.Type, out **btf.Struct) bool {
	for {
		switch x := typ.(type) {
		case *btf.Volatile:
			typ = x.Type
		case *btf.Const:
			typ = x.Type
		case *btf.Typedef:
			typ = x.Type
		case *btf.Struct:
			*out = x
			return true
		default:
			return false
		}
	}
}
