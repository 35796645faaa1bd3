// Package demo is synq's built-in demo workload: a private network namespace
// with one listener whose accept queue overflows and one that stays healthy,
// so there is something to see without any setup.
package demo

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/synq-trace/synq/internal/netlab"
)

// Options shape the demo. Zero fields take the defaults shown.
type Options struct {
	// Name of the network namespace under /run/netns: "synq-demo". A
	// stale one of that name (from a killed run) is removed first.
	Name string

	// The overflowing listener: 127.0.0.1:8080, backlog 8, accepting one
	// connection every 20ms ± 10ms (≈50/s).
	SlowPort    uint16
	SlowBacklog int
	SlowDelay   time.Duration
	SlowJitter  time.Duration

	// Bursts to the slow listener: every 500ms, 40 concurrent dials, ≈80/s
	// offered against ≈50/s accepted. Half of each burst delays its
	// handshake ACK (netlab.DelayHandshakeACK) so those overflow at ACK
	// time and the listener retransmits SYN-ACKs; the other half overflow
	// at SYN time and the clients retransmit SYNs. A burst's sockets are
	// held for BurstHold (2s, past the 1s first retransmits), then reset.
	BurstEvery time.Duration
	BurstSize  int
	BurstHold  time.Duration

	// The healthy listener: 127.0.0.1:8081, backlog 128, accepting at
	// once, fed a steady ChurnBatch (2) connections every ChurnEvery
	// (20ms): ≈100/s.
	HealthyPort    uint16
	HealthyBacklog int
	ChurnEvery     time.Duration
	ChurnBatch     int

	// Acceptor runs a listener's accept loop ("slow" or "healthy"); nil
	// runs it in this process (netlab.Serve). synq demo runs each in a
	// process of its own, so events name the server, not synq.
	Acceptor func(role string, l *netlab.Listener, cfg netlab.ServerConfig) (Acceptor, error)
}

// Acceptor is a running accept loop.
type Acceptor interface {
	// Accepts counts the connections accepted so far (after Stop: all).
	Accepts() int64
	// Stop ends the loop; the listener stays open.
	Stop()
}

func (o *Options) defaults() {
	set := func(p *time.Duration, v time.Duration) {
		if *p <= 0 {
			*p = v
		}
	}
	setInt := func(p *int, v int) {
		if *p <= 0 {
			*p = v
		}
	}
	if o.Name == "" {
		o.Name = "synq-demo"
	}
	if o.SlowPort == 0 {
		o.SlowPort = 8080
	}
	if o.HealthyPort == 0 {
		o.HealthyPort = 8081
	}
	setInt(&o.SlowBacklog, 8)
	setInt(&o.HealthyBacklog, 128)
	setInt(&o.BurstSize, 40)
	setInt(&o.ChurnBatch, 2)
	set(&o.SlowDelay, 20*time.Millisecond)
	if o.SlowJitter < 0 {
		o.SlowJitter = 0
	} else if o.SlowJitter == 0 {
		o.SlowJitter = 10 * time.Millisecond
	}
	set(&o.BurstEvery, 500*time.Millisecond)
	set(&o.BurstHold, 2*time.Second)
	set(&o.ChurnEvery, 20*time.Millisecond)
}

// Ports are the demo's listening ports on 127.0.0.1 inside its namespace.
type Ports struct {
	Slow, Healthy uint16
}

// Stats count what the demo's load generator and acceptors did.
type Stats struct {
	SlowAccepts    int64
	HealthyAccepts int64
	Bursts         int64
	// Client view of burst dials; see netlab.DialResult.
	BurstEstablished, BurstPending, BurstFailed int64
	HealthyDials                                int64
}

// Demo is a running demo. Load and acceptors stop when the context given to
// Run ends or on Close; the namespace lives until Close, so its counters can
// still be read after the load stopped.
type Demo struct {
	opts    Options
	ns      *netlab.Netns
	slow    *netlab.Listener
	healthy *netlab.Listener
	slowSrv Acceptor
	hlthSrv Acceptor

	cancel   context.CancelFunc
	load     sync.WaitGroup
	stopOnce sync.Once
	done     chan struct{}

	burstCount, est, pending, failed, churned atomic.Int64
	closeOnce                                 sync.Once
	closeErr                                  error
}

// Run creates the namespace, both listeners and their acceptors, starts the
// load generator and returns. Accept-queue overflows on the slow listener
// show within the first burst; SYN-ACK retransmits after about a second.
func Run(ctx context.Context, opts Options) (*Demo, error) {
	opts.defaults()
	if err := netlab.DeleteNamed(opts.Name); err != nil {
		return nil, fmt.Errorf("remove stale demo netns: %w", err)
	}
	ns, err := netlab.New(opts.Name)
	if err != nil {
		return nil, fmt.Errorf("create demo netns: %w", err)
	}
	d := &Demo{opts: opts, ns: ns, done: make(chan struct{})}

	lo := netip.AddrFrom4([4]byte{127, 0, 0, 1})
	d.slow, err = ns.Listen("tcp4", netip.AddrPortFrom(lo, opts.SlowPort).String(), opts.SlowBacklog)
	if err == nil {
		d.healthy, err = ns.Listen("tcp4", netip.AddrPortFrom(lo, opts.HealthyPort).String(), opts.HealthyBacklog)
	}
	if err != nil {
		if d.slow != nil {
			d.slow.Close()
		}
		ns.Close()
		return nil, fmt.Errorf("demo listener: %w", err)
	}
	serve := opts.Acceptor
	if serve == nil {
		serve = func(_ string, l *netlab.Listener, cfg netlab.ServerConfig) (Acceptor, error) {
			return netlab.Serve(l, cfg), nil
		}
	}
	d.slowSrv, err = serve("slow", d.slow, netlab.ServerConfig{Delay: opts.SlowDelay, Jitter: opts.SlowJitter})
	if err == nil {
		d.hlthSrv, err = serve("healthy", d.healthy, netlab.ServerConfig{})
	}
	if err != nil {
		if d.slowSrv != nil {
			d.slowSrv.Stop()
		}
		d.slow.Close()
		d.healthy.Close()
		ns.Close()
		return nil, fmt.Errorf("demo server: %w", err)
	}

	ctx, d.cancel = context.WithCancel(ctx)
	d.load.Go(func() { d.burstLoop(ctx) })
	d.load.Go(func() { d.churnLoop(ctx) })
	go func() {
		<-ctx.Done()
		d.stop()
	}()
	return d, nil
}

// burstLoop dials the slow listener in bursts. Each burst runs on its own so a
// burst waiting for SYN retransmits does not delay the next.
func (d *Demo) burstLoop(ctx context.Context) {
	addr := d.slow.String()
	t := time.NewTicker(d.opts.BurstEvery)
	defer t.Stop()
	var inflight sync.WaitGroup
	defer inflight.Wait()
	for {
		inflight.Go(func() { d.burst(ctx, addr) })
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (d *Demo) burst(ctx context.Context, addr string) {
	end := time.Now().Add(d.opts.BurstHold)
	delayed := d.opts.BurstSize / 2
	var results [2]*netlab.DialResult
	var wg sync.WaitGroup
	wg.Go(func() {
		results[0], _ = d.ns.DialMany(ctx, addr, delayed, d.opts.BurstHold, netlab.DelayHandshakeACK())
	})
	wg.Go(func() {
		results[1], _ = d.ns.DialMany(ctx, addr, d.opts.BurstSize-delayed, d.opts.BurstHold)
	})
	wg.Wait()
	// Keep the sockets so the listener's request sockets live on and
	// their SYN-ACKs get retransmitted; closing resets them.
	select {
	case <-ctx.Done():
	case <-time.After(time.Until(end)):
	}
	d.burstCount.Add(1)
	for _, res := range results {
		if res == nil {
			continue
		}
		d.est.Add(int64(res.Established))
		d.pending.Add(int64(res.Pending))
		d.failed.Add(int64(res.Failed))
		res.Close()
	}
}

// churnLoop feeds the healthy listener a steady, paced trickle. Unpaced churn
// (netlab.Churn) would outrun any acceptor and overflow it too.
func (d *Demo) churnLoop(ctx context.Context) {
	addr := d.healthy.String()
	t := time.NewTicker(d.opts.ChurnEvery)
	defer t.Stop()
	for {
		res, err := d.ns.DialMany(ctx, addr, d.opts.ChurnBatch, time.Second)
		if err == nil {
			d.churned.Add(int64(res.Established))
			res.Close()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// stop ends load and acceptors and closes the listeners (resetting anything
// still queued). The namespace stays.
func (d *Demo) stop() {
	d.stopOnce.Do(func() {
		d.cancel()
		d.load.Wait()
		d.slowSrv.Stop()
		d.hlthSrv.Stop()
		d.slow.Close()
		d.healthy.Close()
		close(d.done)
	})
}

// Stop ends load and acceptors and closes the listeners; the namespace
// stays until Close, for its counters.
func (d *Demo) Stop() { d.stop() }

// Netns is the demo's network namespace.
func (d *Demo) Netns() *netlab.Netns { return d.ns }

// Ports are the listening ports on 127.0.0.1 in Netns.
func (d *Demo) Ports() Ports { return Ports{Slow: d.slow.Port(), Healthy: d.healthy.Port()} }

// Listeners are the slow and the healthy listener, e.g. for their Queue.
func (d *Demo) Listeners() (slow, healthy *netlab.Listener) { return d.slow, d.healthy }

// Done is closed once load and acceptors have stopped.
func (d *Demo) Done() <-chan struct{} { return d.done }

// Stats is a snapshot of the demo's own counts.
func (d *Demo) Stats() Stats {
	return Stats{
		SlowAccepts:      d.slowSrv.Accepts(),
		HealthyAccepts:   d.hlthSrv.Accepts(),
		Bursts:           d.burstCount.Load(),
		BurstEstablished: d.est.Load(),
		BurstPending:     d.pending.Load(),
		BurstFailed:      d.failed.Load(),
		HealthyDials:     d.churned.Load(),
	}
}

// Close stops everything and deletes the namespace.
func (d *Demo) Close() error {
	d.closeOnce.Do(func() {
		d.stop()
		if err := d.ns.Close(); err != nil {
			d.closeErr = errors.Join(d.closeErr, fmt.Errorf("delete demo netns: %w", err))
		}
	})
	return d.closeErr
}
