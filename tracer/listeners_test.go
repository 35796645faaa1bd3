package tracer

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
)

// Records as iter.c writes them (bpf2go's struct synq_listener) decode to the
// Listener they describe.
func TestDecodeListeners(t *testing.T) {
	v6 := netip.MustParseAddr("2001:db8::7")
	cases := []struct {
		raw  iterSynqListener
		want Listener
	}{
		{
			raw: iterSynqListener{Listener: 0xffff888012345678, Ino: 123456789012, Netns: 4026531840, AccLen: 3, AccMax: 128,
				SynLen: 5, SynYoung: 2, SkDrops: 17, Uid: 1000, Family: 2, Lport: 8080, Laddr: [16]uint8{127, 0, 0, 1}},
			want: Listener{ID: 0xffff888012345678, Inode: 123456789012,
				Endpoint:       Endpoint{Netns: 4026531840, Addr: netip.MustParseAddr("127.0.0.1"), Port: 8080},
				AcceptQueueLen: 3, AcceptQueueMax: 128, SynQueueLen: 5, SynQueueYoung: 2, SkDrops: 17, UID: 1000},
		},
		{
			raw: iterSynqListener{Listener: 1, Ino: 2, Netns: 3, AccLen: 0xffffffff, AccMax: 4096, SynLen: 6, SynYoung: 7,
				SkDrops: 0xfffffffe, Uid: 0, Family: 10, Lport: 443, Laddr: v6.As16()},
			want: Listener{ID: 1, Inode: 2, Endpoint: Endpoint{Netns: 3, Addr: v6, Port: 443},
				AcceptQueueLen: 0xffffffff, AcceptQueueMax: 4096, SynQueueLen: 6, SynQueueYoung: 7, SkDrops: 0xfffffffe},
		},
		{
			// v4 on a wildcard address: bytes past the fourth are not read
			raw:  iterSynqListener{Family: 2, Lport: 22, Laddr: [16]uint8{0, 0, 0, 0, 9, 9, 9, 9}},
			want: Listener{Endpoint: Endpoint{Addr: netip.AddrFrom4([4]byte{}), Port: 22}},
		},
	}
	var buf bytes.Buffer
	for _, c := range cases {
		if err := binary.Write(&buf, binary.LittleEndian, c.raw); err != nil {
			t.Fatal(err)
		}
	}
	if buf.Len() != len(cases)*listenerSize {
		t.Fatalf("%d records encode to %d bytes, want %d each", len(cases), buf.Len(), listenerSize)
	}
	got, err := decodeListeners(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(cases) {
		t.Fatalf("decoded %d listeners from %d records", len(got), len(cases))
	}
	for i, c := range cases {
		if got[i] != c.want {
			t.Errorf("record %d:\n got  %+v\n want %+v", i, got[i], c.want)
		}
	}
	if ls, err := decodeListeners(nil); err != nil || len(ls) != 0 {
		t.Errorf("no records: %v, %v", ls, err)
	}
	if _, err := decodeListeners(buf.Bytes()[:listenerSize+1]); err == nil {
		t.Error("a partial record decoded without error")
	}
}
