package main

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

	"github.com/synq-trace/synq/internal/demo"
	"github.com/synq-trace/synq/internal/netlab"
	"github.com/urfave/cli/v2"
)

// demoServerCommand is the demo's server process (hidden): an accept loop on
// the listening socket inherited as fd 3, sleeping --delay ± --jitter before
// each accept(2). It stops when its stdin closes (synq demo ended or died)
// and prints "accepts N".
func demoServerCommand() *cli.Command {
	return &cli.Command{
		Name:   "demo-server",
		Hidden: true,
		Flags: []cli.Flag{
			&cli.DurationFlag{Name: "delay"},
			&cli.DurationFlag{Name: "jitter"},
		},
		Action: func(c *cli.Context) error {
			f := os.NewFile(3, "listener")
			if f == nil {
				return usagef("demo-server: no listening socket on fd 3")
			}
			ln, err := net.FileListener(f)
			f.Close()
			if err != nil {
				return usagef("demo-server: fd 3: %v", err)
			}
			var n atomic.Int64
			var stopped atomic.Bool
			go func() {
				_, _ = io.Copy(io.Discard, os.Stdin)
				stopped.Store(true)
				ln.Close()
			}()
			delay, jitter := c.Duration("delay"), c.Duration("jitter")
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
			fmt.Fprintf(c.App.Writer, "accepts %d\n", n.Load())
			return nil
		},
	}
}

// demoServerViaEnv: the test binary is synq only through TestMain's
// SYNQ_TEST_MAIN_ARGS; set by the tests.
var demoServerViaEnv bool

// procAcceptor is a demo-server process.
type procAcceptor struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   strings.Builder
	dir   string
	once  sync.Once
	n     int64
}

// spawnAcceptor runs l's accept loop as `demo-ROLE`, a process of its own:
// synq re-executed through a symlink of that name, which is the comm the
// kernel gives it and synq's events show.
func spawnAcceptor(stderr io.Writer) func(string, *netlab.Listener, netlab.ServerConfig) (demo.Acceptor, error) {
	return func(role string, l *netlab.Listener, cfg netlab.ServerConfig) (demo.Acceptor, error) {
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
		if demoServerViaEnv {
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
