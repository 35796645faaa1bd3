package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"sort"
	"text/tabwriter"

	"github.com/synq-trace/synq/internal/aggregate"
	"github.com/synq-trace/synq/internal/netns"
	"github.com/synq-trace/synq/internal/owner"
	"github.com/synq-trace/synq/internal/render"
	"github.com/synq-trace/synq/tracer"
	"github.com/urfave/cli/v2"
)

func listenersCommand() *cli.Command {
	return &cli.Command{
		Name:   "listeners",
		Usage:  "snapshot every listening TCP socket in every netns: queues, drops, owner",
		Flags:  []cli.Flag{flagOutput, flagNetns, flagPort, flagBTF},
		Action: runListeners,
	}
}

// listenerRow is one listener with its owners, as printed.
type listenerRow struct {
	Netns          uint32   `json:"netns"`
	NetnsName      string   `json:"netns_name,omitempty"`
	Addr           string   `json:"addr"`
	Port           uint16   `json:"port"`
	AcceptQueueLen uint32   `json:"accept_queue_len"`
	AcceptQueueMax uint32   `json:"accept_queue_max"`
	SynQueueLen    uint32   `json:"syn_queue_len"`
	SynQueueMax    uint32   `json:"syn_queue_max"`
	Drops          uint32   `json:"drops"`
	UID            uint32   `json:"uid"`
	Inode          uint64   `json:"inode"`
	Member         int      `json:"member,omitempty"` // number in its SO_REUSEPORT group
	PIDs           []int    `json:"pids,omitempty"`
	Comms          []string `json:"comms,omitempty"`

	ep tracer.Endpoint // for text: Addr as netip.Addr
}

// snapshotAll lists listeners in the given namespaces (all when nil), and
// says once on stderr which namespaces it could not list, and why.
func snapshotAll(c *cli.Context, only *netns.NS) ([]tracer.Listener, error) {
	snap, err := tracer.NewSnapshotter(c.String("btf"))
	if err != nil {
		return nil, kernelErr(err)
	}
	defer snap.Close()
	v, err := newWalker(c, snap, only, 0).Walk()
	if err != nil {
		return nil, err
	}
	return v.Listeners(), nil
}

func runListeners(c *cli.Context) error {
	format, err := outputFormat(c)
	if err != nil {
		return err
	}
	port, err := portFilter(c)
	if err != nil {
		return err
	}
	ns, nsSet, err := netnsFilter(c)
	if err != nil {
		return err
	}
	var only *netns.NS
	if nsSet {
		only = &ns
	}
	ls, err := snapshotAll(c, only)
	if err != nil {
		return err
	}
	want := map[uint64]bool{}
	for _, l := range ls {
		want[l.Inode] = true
	}
	owners := owner.Index("/proc", want)
	names := netns.Names()
	members := aggregate.Members(ls)
	var rows []listenerRow
	for _, l := range ls {
		if port != 0 && l.Port != port {
			continue
		}
		r := listenerRow{Netns: l.Netns, NetnsName: names[uint64(l.Netns)], Addr: l.Addr.String(), Port: l.Port,
			AcceptQueueLen: l.AcceptQueueLen, AcceptQueueMax: l.AcceptQueueMax,
			SynQueueLen: l.SynQueueLen, SynQueueMax: l.AcceptQueueMax, Drops: l.SkDrops, UID: l.UID, Inode: l.Inode, Member: members[l.Inode], ep: l.Endpoint}
		for _, p := range owners[l.Inode] {
			r.PIDs = append(r.PIDs, p.PID)
			r.Comms = append(r.Comms, p.Comm)
		}
		rows = append(rows, r)
	}
	sort.Slice(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if a.Netns != b.Netns {
			return a.Netns < b.Netns
		}
		if a.Port != b.Port {
			return a.Port < b.Port
		}
		if a.Addr != b.Addr {
			return a.Addr < b.Addr
		}
		return a.Inode < b.Inode
	})
	// One write(2) per row (JSON) or per cell (tabwriter) cost more than
	// the snapshot itself with 10k listeners: buffer.
	out := bufio.NewWriterSize(c.App.Writer, 64<<10)
	if format == render.JSON {
		enc := json.NewEncoder(out)
		for _, r := range rows {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return out.Flush()
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NETNS\tLISTENER\tACCEPT-Q\tSYN-Q\tDROPS\tOWNER")
	for _, r := range rows {
		nsName := fmt.Sprint(r.Netns)
		if r.NetnsName != "" {
			nsName += " (" + r.NetnsName + ")"
		}
		own := "-"
		if len(r.PIDs) > 0 {
			own = fmt.Sprintf("%d/%s", r.PIDs[0], r.Comms[0])
			if len(r.PIDs) > 1 {
				own += fmt.Sprintf(" +%d", len(r.PIDs)-1)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%d/%d\t%d\t%s\n", nsName, aggregate.MemberLabel(r.ep, r.Member), r.AcceptQueueLen, r.AcceptQueueMax,
			r.SynQueueLen, r.SynQueueMax, r.Drops, own)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return out.Flush()
}
