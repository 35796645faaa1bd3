package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/synq-trace/synq/internal/exporter"
	"github.com/synq-trace/synq/tracer"
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
			&cli.StringFlag{Name: "web.config.file", Usage: "exporter-toolkit web configuration `FILE`: TLS, client certificates, basic auth (https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md)"},
			&cli.IntFlag{Name: "max-listeners", Value: 100, Usage: "listeners with series of their own (busiest first); the rest are summed into port=\"other\""},
			&cli.DurationFlag{Name: "expire", Value: 5 * time.Minute, Usage: "keep exporting a listener this long after it closed (frozen, without queue gauges), then drop its series"},
			flagTier,
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "report every hook and why better tiers were skipped"},
		},
		Action: runServe,
	}
}

func runServe(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("serve takes no arguments, got %q", c.Args().First())
	}
	addr := c.String("web.listen-address")
	loopback, err := checkListen(addr)
	if err != nil {
		return err
	}
	webCfg, err := loadWebConfig(c.String("web.config.file"))
	if err != nil {
		return err
	}
	if n := c.Int("max-listeners"); n < 1 {
		return usagef("invalid --max-listeners %d: must be at least 1", n)
	}
	if d := c.Duration("expire"); d <= 0 {
		return usagef("invalid --expire %v: must be positive", d)
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

	// Bind before loading anything: an address in use is one line, at once.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return listenErr(addr, err)
	}
	defer ln.Close()
	stderr := c.App.ErrWriter
	if !loopback && !webCfg.protected() {
		fmt.Fprintf(stderr, "synq: warning: --web.listen-address %s is not a loopback address: /metrics and /healthz are reachable from the network, without TLS or authentication (see --web.config.file)\n", addr)
	}

	tr, err := openTracer(c, cfg)
	if err != nil {
		return err
	}
	defer tr.Close()
	snap, err := tracer.NewSnapshotter(c.String("btf"))
	if err != nil {
		return kernelErr(err)
	}
	defer snap.Close()
	src, err := exporter.NewKernelSource(tr, snap, only)
	if err != nil {
		return err
	}
	logger := log.New(stderr, "synq: ", 0)
	exp, err := exporter.New(src, exporter.Options{
		MaxListeners:    c.Int("max-listeners"),
		Expire:          c.Duration("expire"),
		Version:         version,
		ReconciledNetns: uint32(src.Reconciled().Inode),
		Logf:            logger.Printf,
	})
	if err != nil {
		return err
	}
	reg, err := exporter.Registry(exp)
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(c.Context)
	defer cancel()
	// Events only name listeners; counters and histograms are read from the
	// kernel at scrape time.
	var readErr error
	var readMu sync.Mutex
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		err := tr.Read(ctx, exp.Observe)
		readMu.Lock()
		if err == nil && ctx.Err() == nil {
			err = errors.New("event reader stopped")
		}
		readErr = err
		readMu.Unlock()
		if err != nil {
			logger.Printf("%v", err)
		}
	}()
	health := func() error {
		readMu.Lock()
		err := readErr
		readMu.Unlock()
		if err != nil {
			return err
		}
		return exp.Healthy()
	}

	srv := exporter.NewServer(reg, health, logger, version)
	serveErr := make(chan error, 1)
	go func() { serveErr <- webCfg.serve(srv, ln, stderr) }()
	fmt.Fprintf(stderr, "synq: serving metrics on %s://%s/metrics%s (reconciling with netns %s)\n", webCfg.scheme(), ln.Addr(), webCfg.describe(), src.Reconciled())

	select {
	case <-ctx.Done():
	case err = <-serveErr:
		cancel()
		<-readDone
		return fmt.Errorf("serve metrics: %w", err)
	case <-readDone:
		// The tracer broke: say so on /healthz until stopped, so an
		// orchestrator restarts synq rather than scrape stale numbers.
		<-ctx.Done()
	}
	shut, done := context.WithTimeout(context.Background(), 5*time.Second)
	defer done()
	if err := srv.Shutdown(shut); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("stop serving metrics: %w", err)
	}
	cancel()
	<-readDone
	return nil
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
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback(), nil
}

// listenErr words a failed bind in one line: "cannot listen on ADDR: address
// already in use".
func listenErr(addr string, err error) error {
	var se *net.OpError
	if errors.As(err, &se) {
		var errno syscall.Errno
		if errors.As(se.Err, &errno) {
			return fmt.Errorf("cannot listen on %s: %v", addr, errno)
		}
		return fmt.Errorf("cannot listen on %s: %v", addr, se.Err)
	}
	return fmt.Errorf("cannot listen on %s: %v", addr, err)
}
