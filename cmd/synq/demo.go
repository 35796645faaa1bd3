package main

import (
	"fmt"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/synq-trace/synq/internal/demo"
	"github.com/synq-trace/synq/internal/netlab"
	"github.com/synq-trace/synq/tracer"
	"github.com/urfave/cli/v2"
)

func demoCommand() *cli.Command {
	return &cli.Command{
		Name: "demo",
		Usage: "run a slow listener (backlog 8) and a healthy one under load in netns synq-demo, " +
			"trace them, and reconcile the drops with the kernel's counters",
		Flags: []cli.Flag{
			flagOutput, flagBTF,
			&cli.DurationFlag{Name: "duration", Value: 10 * time.Second, Usage: "how long to run"},
			&cli.StringFlag{Name: "tier", Value: "auto", Usage: "auto, fentry, kprobe or tracepoint"},
			&cli.StringFlag{Name: "events", Usage: "comma list of event kinds to print"},
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "report every hook"},
		},
		Action: runDemo,
	}
}

func runDemo(c *cli.Context) error {
	format, err := outputFormat(c)
	if err != nil {
		return err
	}
	tier, err := tracer.ParseTier(c.String("tier"))
	if err != nil {
		return usageErr(err)
	}
	kinds, err := parseKinds(c.String("events"))
	if err != nil {
		return err
	}
	if c.Duration("duration") <= 0 {
		return usagef("invalid --duration %v: must be positive", c.Duration("duration"))
	}
	d, err := demo.Run(c.Context, demo.Options{})
	if err != nil {
		return fmt.Errorf("start demo: %w", err)
	}
	defer d.Close()
	ns := d.Netns()
	fmt.Fprintf(c.App.ErrWriter, "synq: demo in netns %s (inode %d): slow listener 127.0.0.1:%d (backlog 8), healthy 127.0.0.1:%d\n",
		ns.Name(), ns.Inode(), d.Ports().Slow, d.Ports().Healthy)

	tr, err := openTracer(c, tracer.Config{Tier: tier, Netns: uint32(ns.Inode()), Kinds: kinds, BTFPath: c.String("btf")})
	if err != nil {
		return err
	}
	defer tr.Close()
	snap, err := tracer.NewSnapshotter(c.String("btf"))
	if err != nil {
		return kernelErr(err)
	}
	defer snap.Close()
	before, c0, err := demoState(ns, snap)
	if err != nil {
		return err
	}
	if _, err := streamEvents(c, tr, format); err != nil {
		return err
	}
	after, c1, err := demoState(ns, snap)
	if err != nil {
		return err
	}
	counts, err := tr.Counts()
	if err != nil {
		return err
	}
	return printDemoSummary(c, tr.Info(), before, after, counts, c1.Sub(c0))
}

func demoState(ns *netlab.Netns, snap *tracer.Snapshotter) (map[tracer.ListenerID]tracer.Listener, netlab.Counters, error) {
	var ls []tracer.Listener
	var ctr netlab.Counters
	err := ns.Do(func() (err error) {
		ls, err = snap.Listeners()
		return err
	})
	if err == nil {
		ctr, err = ns.Counters()
	}
	m := map[tracer.ListenerID]tracer.Listener{}
	for _, l := range ls {
		m[l.ID] = l
	}
	return m, ctr, err
}

// printDemoSummary shows, per listener, what synq counted in the kernel and
// the drops it attributes, next to the namespace's own ListenDrops.
func printDemoSummary(c *cli.Context, info tracer.Info, before, after map[tracer.ListenerID]tracer.Listener,
	counts map[tracer.ListenerID]tracer.Counts, delta netlab.Counters) error {
	ids := make([]tracer.ListenerID, 0, len(after))
	for id := range after {
		if _, ok := before[id]; ok {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return after[ids[i]].Port < after[ids[j]].Port })
	w := c.App.ErrWriter
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LISTENER\tENQUEUED\tACCEPTED\tACK-OVERFLOW\tSYNACK-RETRANS\tLISTEN-DROPS\tACCEPT-Q NOW")
	var total uint64
	exact := true
	for _, id := range ids {
		l, cnt := after[id], counts[id]
		drops, ok := tracer.ListenDrops(info, before[id], l, cnt)
		exact = exact && ok
		total += drops
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d/%d\n", l.Endpoint, cnt.Enqueue, cnt.Accept, cnt.AckOverflow,
			cnt.SynackRetrans, drops, l.AcceptQueueLen, l.AcceptQueueMax)
	}
	tw.Flush()
	kernel := delta["TcpExt.ListenDrops"]
	cov := "n/a"
	if kernel > 0 {
		cov = fmt.Sprintf("%.0f%%", 100*float64(total)/float64(kernel))
	}
	how := "exact"
	if !exact {
		how = "approximate: sk_drops"
	}
	fmt.Fprintf(w, "\nnetns ListenDrops: kernel %d, attributed by synq %d (%s, %s); ListenOverflows %d, TCPSynRetrans %d\n",
		kernel, total, cov, how, delta["TcpExt.ListenOverflows"], delta["TcpExt.TCPSynRetrans"])
	return nil
}
