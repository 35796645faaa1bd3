package demo

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/synq-trace/synq/internal/netlab"
)

// AcceptLoop is the body of the demo's server process (synq demo-server): it
// accepts on ln, sleeping delay ± jitter before each accept(2), until stdin
// closes (synq demo ended or died), then closes ln and returns the number of
// connections accepted.
func AcceptLoop(ln net.Listener, stdin io.Reader, delay, jitter time.Duration) int64 {
	var n atomic.Int64
	var stopped atomic.Bool
	go func() {
		_, _ = io.Copy(io.Discard, stdin)
		stopped.Store(true)
		ln.Close()
	}()
	for !stopped.Load() {
		if d := delay; d > 0 {
			if jitter > 0 {
				d += time.Duration(rand.Int64N(int64(2*jitter))) - jitter
			}
			time.Sleep(d)
		}
		conn, err := ln.Accept()
		if err != nil {
			if stopped.Load() || errors.Is(err, net.ErrClosed) {
				break
			}
			continue
		}
		n.Add(1)
		conn.Close()
	}
	return n.Load()
}

// procAcceptor is a demo-server process.
type procAcceptor struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   strings.Builder
	dir   string
	once  sync.Once
	n     int64
}

// SpawnAcceptor is an Options.Acceptor that runs l's accept loop as
// `demo-ROLE`, a process of its own: the running executable (synq)
// re-executed through a symlink of that name, which is the comm the kernel
// gives it and synq's events show, with the arguments `demo-server --delay D
// --jitter J` and the listening socket as fd 3. The process prints "accepts
// N" when it stops. viaEnv also passes those arguments in
// SYNQ_TEST_MAIN_ARGS, for a test binary standing in for synq.
func SpawnAcceptor(stderr io.Writer, viaEnv bool) func(string, *netlab.Listener, netlab.ServerConfig) (Acceptor, error) {
	return func(role string, l *netlab.Listener, cfg netlab.ServerConfig) (Acceptor, error) {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		dir, err := os.MkdirTemp("", "synq-demo-")
		if err != nil {
			return nil, err
		}
		p := &procAcceptor{dir: dir}
		link := filepath.Join(dir, "demo-"+role)
		if err := os.Symlink(exe, link); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		f, err := l.TCPListener().File()
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		defer f.Close()
		args := []string{"demo-server", "--delay", cfg.Delay.String(), "--jitter", cfg.Jitter.String()}
		p.cmd = exec.Command(link, args...)
		if viaEnv {
			p.cmd.Env = append(os.Environ(), "SYNQ_TEST_MAIN_ARGS="+strings.Join(args, " "))
		}
		p.cmd.ExtraFiles = []*os.File{f}
		p.cmd.Stdout, p.cmd.Stderr = &p.out, stderr
		if p.stdin, err = p.cmd.StdinPipe(); err == nil {
			err = p.cmd.Start()
		}
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("start demo-%s: %w", role, err)
		}
		return p, nil
	}
}

func (p *procAcceptor) Stop() {
	p.once.Do(func() {
		p.stdin.Close()
		_ = p.cmd.Wait()
		os.RemoveAll(p.dir)
		sc := bufio.NewScanner(strings.NewReader(p.out.String()))
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "accepts "); ok {
				p.n, _ = strconv.ParseInt(v, 10, 64)
			}
		}
	})
}

// Accepts is known once the process stopped; 0 before.
func (p *procAcceptor) Accepts() int64 { return p.n }
