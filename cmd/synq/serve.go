package main

import (
	"net"
	"strconv"
	"time"

	"github.com/synq-trace/synq/internal/command"
	"github.com/synq-trace/synq/internal/exporter"
	"github.com/urfave/cli/v2"
)

const defaultListen = "127.0.0.1:9464"

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "export per-listener drops, queues and accept latency as Prometheus metrics on /metrics",
		Flags: []cli.Flag{
			flagNetns, flagBTF,
			&cli.StringFlag{Name: "web.listen-address", Aliases: []string{"listen"}, Value: defaultListen, Usage: "address for /metrics and /healthz; a non-loopback address exposes them to the network (protect them with --web.config.file)"},
			&cli.StringFlag{Name: "web.config.file", Usage: "exporter-toolkit web configuration `FILE` (as node_exporter's): TLS, client certificates, basic auth; see docs/exporter.md"},
			&cli.IntFlag{Name: "max-listeners", Value: 100, Usage: "listeners with series of their own (busiest first); the rest are summed into port=\"other\""},
			&cli.DurationFlag{Name: "expire", Value: 5 * time.Minute, Usage: "keep exporting a listener this long after it closed (frozen, without queue gauges), then drop its series"},
			flagTier, flagRuntimeEndpoint,
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "report every hook and why better tiers were skipped"},
		},
		Action: runServe,
	}
}

func runServe(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	addr := c.String("web.listen-address")
	loopback, err := checkListen(addr)
	if err != nil {
		return err
	}
	web, err := command.WebConfig(c.String("web.config.file"), c.App.ErrWriter)
	if err != nil {
		return usageErr(err)
	}
	if n := c.Int("max-listeners"); n < 1 {
		return usagef("invalid --max-listeners %d: must be at least 1", n)
	}
	if d := c.Duration("expire"); d <= 0 {
		return usagef("invalid --expire %v: must be positive", d)
	}
	endpoint, err := runtimeEndpoint(c)
	if err != nil {
		return err
	}
	// Counters and the accept latency histogram are kept in the kernel and
	// read at scrape time; only overflows are streamed (they name
	// listeners), with batched wakeups.
	cfg, only, err := tracerConfig(c, exporter.Kinds())
	if err != nil {
		return err
	}
	cfg.AcceptLatency = true
	// Only overflows cross the ring buffer, and lost ones lose nothing but
	// a listener's name: a small ring keeps serve's RSS down (it is mapped
	// twice: 4 MiB would be 8 MiB of RSS).
	cfg.RingBytes = 256 << 10

	return command.Serve(c.Context, env(c), command.ServeOptions{Addr: addr, Loopback: loopback,
		MaxListeners: c.Int("max-listeners"), Expire: c.Duration("expire"), Tracer: cfg, Only: only, Version: version, Web: web,
		RuntimeEndpoint: endpoint})
}

// checkListen validates --web.listen-address and says whether it is loopback only.
// "localhost" counts as loopback; an empty host (":9464") is every address.
func checkListen(addr string) (loopback bool, err error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return false, usagef("invalid --web.listen-address %q: want host:port, e.g. %s", addr, defaultListen)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return false, usagef("invalid --web.listen-address %q: port must be 0-65535", addr)
	}
	if host == "localhost" {
		return true, nil
	}
	if err := command.CheckListenHost(host); err != nil {
		return false, usagef("invalid --web.listen-address %q: %v", addr, err)
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback(), nil
}
