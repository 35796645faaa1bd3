package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/synq-trace/synq/internal/netlab"
	"github.com/synq-trace/synq/tracer"
)

type snapResult struct {
	listeners, netns int
	found            int             // listeners the in-process snapshot saw in our netns
	inproc           []time.Duration // tracer.Snapshotter over every netns, per try
	cli              []time.Duration // `synq listeners --output json`, per try
	cliRSSKiB        int64           // max RSS over the tries
	cliErr           string
	others           []cmdResult // synq top --once, synq serve
}

// cmdResult is one synq command run at scale, a few times.
type cmdResult struct {
	what   string
	wall   []time.Duration
	cpu    []time.Duration // user + system
	rssKiB int64           // max over the tries
	err    string
	// serve's scrapes: the first of each try (it lists the owners and
	// their workloads for the first time), and the later ones.
	firstScrape, scrapes []time.Duration
	scrapeBytes          int64
}

// snapshotScale spreads c.listeners listeners over c.netns named
// namespaces (named, so `synq listeners` finds them in /run/netns) and
// times a snapshot of them, in-process and with the CLI.
func snapshotScale(c config, r *report) error {
	res := &snapResult{listeners: c.listeners, netns: c.netns}
	r.snap = res
	var nss []*netlab.Netns
	var lns []*netlab.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
		for _, n := range nss {
			n.Close()
		}
	}()
	per := c.listeners / c.netns
	for i := range c.netns {
		name := fmt.Sprintf("synqbench-%d", i)
		_ = netlab.DeleteNamed(name) // a previous run killed before cleanup
		n, err := netlab.New(name)
		if err != nil {
			return err
		}
		nss = append(nss, n)
		for range per {
			l, err := n.Listen("tcp4", "127.0.0.1:0", 128)
			if err != nil {
				return fmt.Errorf("listener %d of %d: %w", len(lns)+1, c.listeners, err)
			}
			lns = append(lns, l)
		}
	}

	s, err := tracer.NewSnapshotter("")
	if err != nil {
		return err
	}
	defer s.Close()
	for range 3 {
		found := 0
		t0 := time.Now()
		for _, n := range nss {
			err := n.Do(func() error {
				ls, err := s.Listeners()
				found += len(ls)
				return err
			})
			if err != nil {
				return err
			}
		}
		res.inproc = append(res.inproc, time.Since(t0))
		res.found = found
	}

	for range 3 {
		cmd := exec.Command(c.synq, "listeners", "--output", "json")
		cmd.Stdout = io.Discard
		var errb strings.Builder
		cmd.Stderr = &errb
		t0 := time.Now()
		if err := cmd.Run(); err != nil {
			res.cliErr = fmt.Sprintf("%v: %s", err, lastLine(errb.String()))
			break
		}
		res.cli = append(res.cli, time.Since(t0))
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			res.cliRSSKiB = max(res.cliRSSKiB, ru.Maxrss)
		}
	}

	top := cmdResult{what: "`synq top --once --interval 1s --output json > /dev/null` (process start to exit, 1 s of it waiting)"}
	serve := cmdResult{what: "`synq serve`, 3 scrapes of /metrics, then SIGINT (process start to exit)"}
	for range 3 {
		top.run(exec.Command(c.synq, "top", "--once", "--interval", "1s", "--output", "json"), nil)
		serve.run(exec.Command(c.synq, "serve", "--listen", scaleServeAddr), serve.scrape3)
	}
	res.others = []cmdResult{top, serve}
	return nil
}

// scaleServeAddr: a loopback port free when synqbench started (other
// processes of a shared machine may hold any fixed one).
var scaleServeAddr = freeAddr()

// scrape3 waits for `synq serve` to answer, scrapes /metrics three times
// (timing each, request to last byte) and asks it to stop.
func (r *cmdResult) scrape3(p *os.Process) error {
	defer p.Signal(os.Interrupt)
	url := "http://" + scaleServeAddr + "/metrics"
	deadline := time.Now().Add(30 * time.Second)
	for n := 0; n < 3; {
		t0 := time.Now()
		resp, err := http.Get(url)
		if err != nil {
			if time.Now().After(deadline) {
				return fmt.Errorf("not serving after 30s: %w", err)
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		size, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return fmt.Errorf("scrape: status %d, %v", resp.StatusCode, err)
		}
		if d := time.Since(t0); n == 0 {
			r.firstScrape = append(r.firstScrape, d)
		} else {
			r.scrapes = append(r.scrapes, d)
		}
		r.scrapeBytes = size
		n++
	}
	return nil
}

// run runs cmd once (with during, if set, while it runs) and records its
// wall time, CPU and max RSS; the first failure stops further tries.
func (r *cmdResult) run(cmd *exec.Cmd, during func(*os.Process) error) {
	if r.err != "" {
		return
	}
	cmd.Stdout = io.Discard
	var errb strings.Builder
	cmd.Stderr = &errb
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		r.err = err.Error()
		return
	}
	var derr error
	if during != nil {
		derr = during(cmd.Process)
	}
	err := cmd.Wait()
	wall := time.Since(t0)
	if derr != nil {
		_ = cmd.Process.Kill()
		r.err = fmt.Sprintf("%v: %s", derr, lastLine(errb.String()))
		return
	}
	// serve exits 0 on SIGINT; anything else is a failure.
	if err != nil {
		r.err = fmt.Sprintf("%v: %s", err, lastLine(errb.String()))
		return
	}
	r.wall = append(r.wall, wall)
	r.cpu = append(r.cpu, cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime())
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.rssKiB = max(r.rssKiB, ru.Maxrss)
	}
}

func median[T int64 | float64 | time.Duration](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// loadNote says whether something else was loading the machine (the QEMU
// VM matrix of `make test` distorts every number here).
func loadNote() string {
	avg, _ := os.ReadFile("/proc/loadavg")
	q, _ := exec.Command("pgrep", "-c", "qemu").Output()
	n := strings.TrimSpace(string(q))
	if n == "" {
		n = "0"
	}
	return fmt.Sprintf("loadavg %s, qemu processes %s", strings.Join(strings.Fields(string(avg))[:3], " "), n)
}
