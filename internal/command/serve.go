package command

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/synq-trace/synq/internal/exporter"
	"github.com/synq-trace/synq/internal/identity"
	"github.com/synq-trace/synq/internal/netns"
	"github.com/synq-trace/synq/tracer"
)

// ServeOptions are serve's flags, checked.
type ServeOptions struct {
	Addr         string        // --web.listen-address (--listen)
	Loopback     bool          // Addr is loopback only
	MaxListeners int           // --max-listeners
	Expire       time.Duration // --expire
	Tracer       tracer.Config // from tracerConfig, for exporter.Kinds
	Only         *netns.NS     // --netns, nil for every namespace
	Version      string        // synq's, for synq_build_info
	Web          WebServing    // --web.config.file
	// RuntimeEndpoint is the container runtime's CRI socket
	// (--runtime-endpoint; "" tries identity.DefaultEndpoints).
	RuntimeEndpoint string
}

// WebServing is how /metrics is served: exporter-toolkit's web config (TLS,
// basic auth), see WebConfig. The zero value is plain HTTP.
type WebServing struct {
	Protected bool   // TLS or basic auth
	Scheme    string // "http" or "https"
	Describe  string // " with TLS and basic auth", ...
	Serve     func(*http.Server, net.Listener) error
}

// Serve exports the listeners' metrics on Addr until ctx ends.
func Serve(ctx context.Context, env Env, o ServeOptions) error {
	addr, cfg, only := o.Addr, o.Tracer, o.Only
	// Bind before loading anything: an address in use is one line, at once.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return listenErr(addr, err)
	}
	defer ln.Close()
	stderr := env.Stderr
	if !o.Loopback && !o.Web.Protected {
		fmt.Fprintf(stderr, "synq: warning: --web.listen-address %s is not a loopback address: /metrics and /healthz are reachable from the network, without TLS or authentication (see --web.config.file)\n", addr)
	}

	tr, err := openTracer(env, cfg)
	if err != nil {
		return err
	}
	defer tr.Close()
	snap, err := newSnapshotter(env)
	if err != nil {
		return kernelErr(err)
	}
	defer snap.Close()
	src, err := exporter.NewKernelSource(tr, snap, only)
	if err != nil {
		return err
	}
	defer src.Close()
	logger := log.New(stderr, "synq: ", 0)
	src.Walker.Report = func(msg string) { logger.Print(msg) }
	// Names of pods and containers: without the runtime's socket, listeners
	// are named from their cgroups alone (said once, and on /healthz).
	src.Resolver = identity.NewResolver(identity.ResolverConfig{Endpoint: o.RuntimeEndpoint, Warn: stderr})
	defer src.Resolver.Close()
	exp, err := exporter.New(src, exporter.Options{
		MaxListeners:    o.MaxListeners,
		Expire:          o.Expire,
		Version:         o.Version,
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

	ctx, cancel := context.WithCancel(ctx)
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
		if err := src.Healthy(); err != nil {
			return fmt.Errorf("source %s failing: %w", exporter.SourceNetns, err)
		}
		return exp.Healthy()
	}

	srv := exporter.NewServer(reg, health, logger, o.Version)
	serve, scheme := o.Web.Serve, o.Web.Scheme
	if serve == nil {
		serve = func(srv *http.Server, ln net.Listener) error { return srv.Serve(ln) }
	}
	if scheme == "" {
		scheme = "http"
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- serve(srv, ln) }()
	fmt.Fprintf(stderr, "synq: serving metrics on %s://%s/metrics%s (reconciling with netns %s)\n", scheme, ln.Addr(), o.Web.Describe, src.Reconciled())

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
