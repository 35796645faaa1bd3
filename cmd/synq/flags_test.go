package main

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/synq-trace/synq/internal/command"
	"github.com/synq-trace/synq/internal/netns"
	"github.com/synq-trace/synq/tracer"
	"github.com/urfave/cli/v2"
)

// TestTracerConfig: every tracing command builds its tracer.Config here, so
// flags map the same way everywhere and the reader is always woken in
// batches, never per record.
func TestTracerConfig(t *testing.T) {
	self, err := netns.Current()
	if err != nil {
		t.Fatal(err)
	}
	kinds := []tracer.Kind{tracer.KindAccept}
	for _, c := range []struct {
		name  string
		flags []cli.Flag
		args  string
		want  tracer.Config
		only  bool
	}{
		{name: "defaults", flags: []cli.Flag{flagNetns, flagPort, flagBTF, flagTier},
			want: tracer.Config{Tier: tracer.TierAuto, Kinds: kinds}},
		{name: "all set", flags: []cli.Flag{flagNetns, flagPort, flagBTF, flagTier},
			args: "--tier tracepoint --port 8080 --btf /x/vmlinux --netns " + strconv.FormatUint(self.Inode, 10),
			want: tracer.Config{Tier: tracer.TierTracepoint, Port: 8080, BTFPath: "/x/vmlinux", Netns: uint32(self.Inode), Kinds: kinds}, only: true},
		{name: "without --port (serve)", flags: []cli.Flag{flagNetns, flagBTF, flagTier}, args: "--tier kprobe",
			want: tracer.Config{Tier: tracer.TierKprobe, Kinds: kinds}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got tracer.Config
			var only *netns.NS
			cmd := &cli.Command{Name: "x", Flags: c.flags, Action: func(ctx *cli.Context) (err error) {
				got, only, err = tracerConfig(ctx, kinds)
				return err
			}}
			if code, _, stderr := runCommand(cmd, strings.Fields(c.args)...); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if got.WakeupBytes != 64<<10 || got.PollInterval != 100*time.Millisecond {
				t.Errorf("wakeups: WakeupBytes %d, PollInterval %v; want 64 KiB, 100ms (batched)", got.WakeupBytes, got.PollInterval)
			}
			got.WakeupBytes, got.PollInterval = 0, 0
			if got.Tier != c.want.Tier || got.Port != c.want.Port || got.BTFPath != c.want.BTFPath ||
				got.Netns != c.want.Netns || len(got.Kinds) != 1 || got.Kinds[0] != tracer.KindAccept {
				t.Errorf("config %+v, want %+v", got, c.want)
			}
			if (only != nil) != c.only || only != nil && only.Inode != self.Inode {
				t.Errorf("--netns namespace %+v, want set=%v inode %d", only, c.only, self.Inode)
			}
		})
	}
	bad := &cli.Command{Name: "x", Flags: []cli.Flag{flagNetns, flagPort, flagTier}, Action: func(ctx *cli.Context) error {
		_, _, err := tracerConfig(ctx, nil)
		return err
	}}
	for args, want := range map[string]string{
		"--tier uprobe":  `unknown tier "uprobe"`,
		"--port 70000":   "invalid --port 70000",
		"--netns nosuch": `netns "nosuch" does not exist`,
	} {
		if code, _, stderr := runCommand(bad, strings.Fields(args)...); code != 2 || !strings.Contains(stderr, want) {
			t.Errorf("%s: exit %d, stderr %q; want 2 and %q", args, code, stderr, want)
		}
	}
}

// --events naming kinds the tier cannot produce is said once, not silently
// traced as nothing.
func TestUnseenKinds(t *testing.T) {
	info := tracer.Info{Tier: tracer.TierTracepoint, Hooks: []tracer.HookStatus{{Program: "tp_synack_retrans"}, {Program: "tp_set_state"}}}
	got := command.UnseenKinds([]tracer.Kind{tracer.KindSyn, tracer.KindSynackRetrans, tracer.KindEnqueue, tracer.KindSyn, tracer.KindAccept}, info)
	if want := []string{"syn", "accept"}; !slices.Equal(got, want) {
		t.Errorf("unseen %v, want %v", got, want)
	}
	if got := command.UnseenKinds(nil, info); got != nil {
		t.Errorf("no --events: unseen %v, want none", got)
	}
}
