package main

import (
	"strings"
	"time"

	"github.com/synq-trace/synq/internal/command"
	"github.com/synq-trace/synq/internal/identity"
	"github.com/synq-trace/synq/internal/netns"
	"github.com/synq-trace/synq/internal/render"
	"github.com/synq-trace/synq/tracer"
	"github.com/urfave/cli/v2"
)

var (
	flagOutput = &cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "text", Usage: "text or json"}
	flagNetns  = &cli.StringFlag{Name: "netns", Usage: "only this network namespace: inode, name under /run/netns, or path"}
	flagPort   = &cli.IntFlag{Name: "port", Usage: "only listeners on this local port"}
	flagBTF    = &cli.StringFlag{Name: "btf", Usage: "kernel BTF file (default /sys/kernel/btf/vmlinux)"}
	flagSample = &cli.IntFlag{Name: "sample", Value: 1, Usage: "stream 1 in N syn, enqueue and accept events (drops always); counters and histograms stay exact"}
	flagTier   = &cli.StringFlag{Name: "tier", Value: "auto", Usage: "auto, fentry, kprobe or tracepoint"}
)

// workloadFlags name and select listeners by workload: the commands that
// take --port take them.
var workloadFlags = []cli.Flag{
	&cli.StringFlag{Name: "pod", Usage: "only listeners of this Kubernetes pod (name; needs the container runtime's CRI socket)"},
	&cli.StringFlag{Name: "k8s-namespace", Usage: "only listeners of pods in this Kubernetes namespace (not a network namespace: see --netns)"},
	&cli.StringFlag{Name: "container", Usage: "only listeners of this container: name, or a prefix of its id"},
	&cli.StringFlag{Name: "unit", Usage: "only listeners of this systemd unit (nginx or nginx.service)"},
	flagRuntimeEndpoint,
}

// runtimeEndpoint reads --runtime-endpoint: a usage error if given but invalid.
func runtimeEndpoint(c *cli.Context) (string, error) {
	e := c.String(flagRuntimeEndpoint.Name)
	if c.IsSet(flagRuntimeEndpoint.Name) {
		if err := identity.CheckEndpoint(e); err != nil {
			return "", usagef("invalid --runtime-endpoint: %v", err)
		}
	}
	return e, nil
}

// flagRuntimeEndpoint names the CRI socket (serve takes it without the
// filters).
var flagRuntimeEndpoint = &cli.StringFlag{Name: "runtime-endpoint", Usage: "container runtime's CRI socket, path or unix:// URL, for pod and container names " +
	"(default: the first of " + strings.Join(identity.DefaultEndpoints, ", ") + ")"}

// withWorkload appends the workload flags to a command's flags.
func withWorkload(flags ...cli.Flag) []cli.Flag {
	return append(flags, workloadFlags...)
}

// workload reads the workload flags.
func workload(c *cli.Context) (command.Workload, error) {
	ep, err := runtimeEndpoint(c)
	if err != nil {
		return command.Workload{}, err
	}
	w := command.Workload{RuntimeEndpoint: ep, Filter: identity.Filter{
		Pod: c.String("pod"), Namespace: c.String("k8s-namespace"), Container: c.String("container"), Unit: c.String("unit")}}
	for _, f := range []string{"pod", "k8s-namespace", "container", "unit"} {
		if c.IsSet(f) && strings.TrimSpace(c.String(f)) == "" {
			return command.Workload{}, usagef("invalid --%s: empty", f)
		}
	}
	return w, nil
}

// sampleEvery validates --sample.
func sampleEvery(c *cli.Context) (uint32, error) {
	n := c.Int("sample")
	if n < 1 || n > 1<<20 {
		return 0, usagef("invalid --sample %d: want 1 (every event) to 1048576", n)
	}
	return uint32(n), nil
}

// Every tracing command batches ring-buffer wakeups: the kernel wakes the
// reader per 64 KiB of records, and the reader polls every 100 ms for the
// rest. One wakeup per record costs the traced host far more (29% of
// connection-churn throughput; the accept hook ran ~4.1 µs instead of
// ~1.3 µs in docs/benchmarks.md's runs).
const (
	wakeupBytes  = 64 << 10
	pollInterval = 100 * time.Millisecond
)

// tracerConfig builds the tracer.Config of a tracing command from its flags
// (--tier, and --port, --netns and --btf where the command has them) with
// the batched wakeup policy. only is the --netns namespace, nil without it.
func tracerConfig(c *cli.Context, kinds []tracer.Kind) (cfg tracer.Config, only *netns.NS, err error) {
	tier, err := tracer.ParseTier(c.String("tier"))
	if err != nil {
		return tracer.Config{}, nil, usageErr(err)
	}
	port, err := portFilter(c)
	if err != nil {
		return tracer.Config{}, nil, err
	}
	ns, nsSet, err := netnsFilter(c)
	if err != nil {
		return tracer.Config{}, nil, err
	}
	btf, err := btfPath(c)
	if err != nil {
		return tracer.Config{}, nil, err
	}
	cfg = tracer.Config{Tier: tier, Port: port, Kinds: kinds, BTFPath: btf,
		WakeupBytes: wakeupBytes, PollInterval: pollInterval}
	if c.IsSet("sample") {
		if cfg.SampleEvery, err = sampleEvery(c); err != nil {
			return tracer.Config{}, nil, err
		}
	}
	if nsSet {
		cfg.Netns = uint32(ns.Inode)
		only = &ns
	}
	return cfg, only, nil
}

// eventFlags reads the flags of the commands that stream events (trace,
// demo): --output, --events and the tracer's.
func eventFlags(c *cli.Context) (render.Format, tracer.Config, *netns.NS, error) {
	format, err := outputFormat(c)
	if err != nil {
		return "", tracer.Config{}, nil, err
	}
	kinds, err := parseKinds(c.String("events"))
	if err != nil {
		return "", tracer.Config{}, nil, err
	}
	cfg, only, err := tracerConfig(c, kinds)
	if err != nil {
		return "", tracer.Config{}, nil, err
	}
	return format, cfg, only, nil
}

// noArgs refuses arguments to a command that takes none.
func noArgs(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("%s takes no arguments, got %q", c.Command.Name, c.Args().First())
	}
	return nil
}

func outputFormat(c *cli.Context) (render.Format, error) {
	f, err := render.ParseFormat(c.String("output"))
	if err != nil {
		return "", usageErr(err)
	}
	return f, nil
}

func portFilter(c *cli.Context) (uint16, error) {
	if !c.IsSet("port") {
		return 0, nil
	}
	p := c.Int("port")
	if p < 1 || p > 65535 {
		return 0, usagef("invalid --port %d: want 1-65535", p)
	}
	return uint16(p), nil
}

// netnsFilter resolves --netns; ok is false when it is not set.
func netnsFilter(c *cli.Context) (ns netns.NS, ok bool, err error) {
	v := c.String("netns")
	if v == "" {
		return netns.NS{}, false, nil
	}
	ns, err = netns.Resolve(v)
	if err != nil {
		return netns.NS{}, false, usageErr(err)
	}
	return ns, true, nil
}

func parseKinds(v string) ([]tracer.Kind, error) {
	if v == "" {
		return nil, nil
	}
	var ks []tracer.Kind
	for _, s := range strings.Split(v, ",") {
		k, err := tracer.ParseKind(strings.TrimSpace(s))
		if err != nil {
			return nil, usageErr(err)
		}
		ks = append(ks, k)
	}
	return ks, nil
}

// env is what every command shares: where it writes, --btf, --verbose.
func env(c *cli.Context) command.Env {
	return command.Env{Stdout: c.App.Writer, Stderr: c.App.ErrWriter, BTF: c.String("btf"), Verbose: c.Bool("verbose"),
		Interrupted: c.Context.Done()}
}
