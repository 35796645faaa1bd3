package render

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/synq-trace/synq/internal/aggregate"
	"github.com/synq-trace/synq/tracer"
)

// ListenerRow is one listener with its owners, as printed.
type ListenerRow struct {
	Netns          uint32            `json:"netns"`
	NetnsName      string            `json:"netns_name,omitempty"`
	Addr           string            `json:"addr"`
	Port           uint16            `json:"port"`
	AcceptQueueLen uint32            `json:"accept_queue_len"`
	AcceptQueueMax uint32            `json:"accept_queue_max"`
	SynQueueLen    uint32            `json:"syn_queue_len"`
	SynQueueMax    uint32            `json:"syn_queue_max"`
	SkDrops        uint32            `json:"sk_drops"` // the socket's sk_drops (ss -tlm d<N>), not ListenDrops: see skDropsNote
	UID            uint32            `json:"uid"`
	Inode          uint64            `json:"inode"`
	Member         int               `json:"member,omitempty"` // number in its SO_REUSEPORT group
	Owners         []aggregate.Owner `json:"owners"`           // as top's and latency's owners; [] when none found

	ep tracer.Endpoint // for text: Addr as netip.Addr
}

// NewListenerRows joins listeners (those on port, every port when 0) with
// their owners and namespace names, sorted by netns, port and address.
func NewListenerRows(ls []tracer.Listener, port uint16, owners map[uint64][]aggregate.Owner, names map[uint64]string) []ListenerRow {
	members := aggregate.Members(ls)
	// Sorted by small keys, then built in order: rows are large, and
	// sorting 10k of them by swapping was a third of `synq listeners`.
	type key struct {
		netns uint32
		port  uint16
		addr  string
		inode uint64
		i     int
	}
	keys := make([]key, 0, len(ls))
	for i, l := range ls {
		if port != 0 && l.Port != port {
			continue
		}
		keys = append(keys, key{l.Netns, l.Port, l.Addr.String(), l.Inode, i})
	}
	slices.SortFunc(keys, func(a, b key) int {
		return cmp.Or(cmp.Compare(a.netns, b.netns), cmp.Compare(a.port, b.port), strings.Compare(a.addr, b.addr),
			cmp.Compare(a.inode, b.inode))
	})
	rows := make([]ListenerRow, 0, len(keys))
	for _, k := range keys {
		l := ls[k.i]
		r := ListenerRow{Netns: l.Netns, NetnsName: names[uint64(l.Netns)], Addr: k.addr, Port: l.Port,
			AcceptQueueLen: l.AcceptQueueLen, AcceptQueueMax: l.AcceptQueueMax,
			SynQueueLen: l.SynQueueLen, SynQueueMax: l.AcceptQueueMax, SkDrops: l.SkDrops, UID: l.UID, Inode: l.Inode, Member: members[l.Inode], ep: l.Endpoint}
		r.Owners = []aggregate.Owner{}
		r.Owners = append(r.Owners, owners[l.Inode]...)
		rows = append(rows, r)
	}
	return rows
}

// skDropsNote: a snapshot has no history, so it cannot tell the kernel's
// ListenDrops (top, trace --reconcile and serve can, from an interval).
const skDropsNote = "* SK-DROPS: the socket's sk_drops since it was created (ss -tlm d<N>), not ListenDrops: " +
	"the kernel adds 2 for a final ACK dropped on a full accept queue (ListenDrops 1), and receive-path drops; " +
	"synq top shows ListenDrops per listener."

// WriteListeners prints rows as JSON lines or a table.
func WriteListeners(w io.Writer, format Format, rows []ListenerRow) error {
	// One write(2) per row (JSON) or per cell (tabwriter) cost more than
	// the snapshot itself with 10k listeners: buffer.
	out := bufio.NewWriterSize(w, 64<<10)
	if format == JSON {
		enc := json.NewEncoder(out)
		for _, r := range rows {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return out.Flush()
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NETNS\tLISTENER\tACCEPT-Q\tSYN-Q\tSK-DROPS*\tOWNER\tWORKLOAD")
	for _, r := range rows {
		nsName := netnsCell(uint64(r.Netns), r.NetnsName)
		own, wl := "-", "-"
		if len(r.Owners) > 0 {
			own = ownerCell(r.Owners[0].PID, r.Owners[0].Comm, len(r.Owners)-1)
			if s := workload(r.Owners[0]); s != "" {
				wl = s
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%d/%d\t%d\t%s\t%s\n", nsName, aggregate.MemberLabel(r.ep, r.Member), r.AcceptQueueLen, r.AcceptQueueMax,
			r.SynQueueLen, r.SynQueueMax, r.SkDrops, own, wl)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(rows) > 0 {
		fmt.Fprintln(out, "\n"+skDropsNote)
	}
	return out.Flush()
}
