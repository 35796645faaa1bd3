package netlab

import (
	"errors"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// ServerConfig shapes an accept loop.
type ServerConfig struct {
	// Delay is slept before each accept(2), so a queued connection waits
	// about (position in queue) × Delay: a known accept latency.
	Delay time.Duration
	// Jitter spreads each sleep uniformly over Delay ± Jitter.
	Jitter time.Duration
	// Keep holds accepted connections open until Stop instead of closing
	// them at once.
	Keep bool
}

// Server is an accept loop over a Listener.
type Server struct {
	l    *Listener
	cfg  ServerConfig
	stop chan struct{}
	done chan struct{}

	accepts atomic.Int64
	mu      sync.Mutex
	kept    []net.Conn
	err     error
	stopped bool
}

// Serve starts accepting on l in the background. Stop ends it; l stays open.
func Serve(l *Listener, cfg ServerConfig) *Server {
	s := &Server{l: l, cfg: cfg, stop: make(chan struct{}), done: make(chan struct{})}
	go s.loop()
	return s
}

func (s *Server) loop() {
	defer close(s.done)
	for {
		if d := s.sleep(); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-s.stop:
				t.Stop()
				return
			case <-t.C:
			}
		}
		c, err := s.l.Accept()
		if err != nil {
			select {
			case <-s.stop:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and the like: note it, back off, carry on.
			s.mu.Lock()
			s.err = err
			s.mu.Unlock()
			time.Sleep(10 * time.Millisecond)
			continue
		}
		s.accepts.Add(1)
		if !s.cfg.Keep {
			c.Close()
			continue
		}
		s.mu.Lock()
		s.kept = append(s.kept, c)
		s.mu.Unlock()
	}
}

func (s *Server) sleep() time.Duration {
	d := s.cfg.Delay
	if j := s.cfg.Jitter; j > 0 {
		d += time.Duration(rand.Int64N(int64(2*j)+1)) - j
	}
	return d
}

// Accepts is how many connections have been accepted so far.
func (s *Server) Accepts() int64 { return s.accepts.Load() }

// Err is the last accept error other than the listener closing, if any.
func (s *Server) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// WaitAccepts waits until at least n connections were accepted.
func (s *Server) WaitAccepts(n int64, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for s.Accepts() < n {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// Stop ends the loop, waits for it and closes kept connections. The
// listener stays open (its queue keeps filling, unaccepted).
func (s *Server) Stop() {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		<-s.done
		return
	}
	s.stopped = true
	s.mu.Unlock()

	close(s.stop)
	// Wake a blocked Accept without closing the listener.
	_ = s.l.ln.SetDeadline(time.Unix(1, 0))
	<-s.done
	_ = s.l.ln.SetDeadline(time.Time{})

	s.mu.Lock()
	for _, c := range s.kept {
		c.Close()
	}
	s.kept = nil
	s.mu.Unlock()
}
