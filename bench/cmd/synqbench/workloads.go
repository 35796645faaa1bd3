package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/synq-trace/synq/internal/netlab"
)

// workload is what the traced and untraced runs measure: one run of d, its
// operations per second, the ListenOverflows of its netns (non-zero means a
// stalled client: noise) and the machine's busy CPU µs per operation.
type workload interface {
	name() string
	unit() string // what one operation is: "conn", "req"
	run(d time.Duration) (opsS float64, overflows uint64, cpu float64)
	close()
}

func (e *churnEnv) name() string { return "churn" }
func (e *churnEnv) unit() string { return "conn" }
func (e *churnEnv) run(d time.Duration) (float64, uint64, float64) {
	return e.churnCPU(e.conc, d)
}

// workloadDesc says what each workload runs, for the report.
var workloadDesc = map[string]string{
	"churn":     "loopback connection churn: synq's Go server accepting and closing on a backlog-4096 listener, clients connecting and closing (RST) as fast as they can; one operation is one connection",
	"nginx-ab":  "nginx (nginx-light, 1 worker, `return 200`, access log off, listen backlog 4096) under `ab -c 8` without keep-alive: one connection per request through a real server; one operation is one request",
	"nginx-wrk": "the same nginx under `wrk -t 2 -c 16` with keep-alive: request/response on open connections, so the data path (tp_btf/sk_data_ready fires for every readable segment of every socket); one operation is one request",
	"redis-get": "redis-server (persistence off) under `redis-benchmark -t get -c 16` (keep-alive, no pipelining): one operation is one GET",
}

// procEnv is a third-party server in a private named netns, driven by a
// third-party client run in the same netns for each run.
type procEnv struct {
	wname  string
	ns     *netlab.Netns
	dir    string
	server *exec.Cmd
	client func(d time.Duration) []string // argv of one run of d
	ops    func(out string, d time.Duration) (float64, error)
	// for redis-benchmark, which runs a count of requests, not a time:
	// requests per second of the last run, to size the next.
	rate  float64
	lastN int
}

func (e *procEnv) name() string { return e.wname }
func (e *procEnv) unit() string { return "req" }

func (e *procEnv) close() {
	if e.server != nil && e.server.Process != nil {
		_ = e.server.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = e.server.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = e.server.Process.Kill()
			<-done
		}
	}
	e.ns.Close()
	os.RemoveAll(e.dir)
}

func (e *procEnv) run(d time.Duration) (float64, uint64, float64) {
	before, _ := e.ns.Counters()
	b0 := clock.nowNs()
	t0 := time.Now()
	argv := append([]string{"netns", "exec", e.ns.Name()}, e.client(d)...)
	out, err := exec.Command("ip", argv...).CombinedOutput()
	el := time.Since(t0)
	b1 := clock.nowNs()
	after, _ := e.ns.Counters()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v: %s\n", e.wname, err, lastLine(string(out)))
		return 0, 0, 0
	}
	n, err := e.ops(string(out), el)
	if err != nil || n <= 0 {
		fmt.Fprintf(os.Stderr, "%s: no operations counted (%v): %s\n", e.wname, err, lastLine(string(out)))
		return 0, 0, 0
	}
	e.rate = n / el.Seconds()
	return n / el.Seconds(), after.Sub(before)["ListenOverflows"], float64(b1-b0) / 1e3 / n
}

// newProcEnv makes the netns (named, for `ip netns exec`) and starts the
// server, waiting until port answers.
func newProcEnv(wname string, server func(dir string) []string, port int) (*procEnv, error) {
	ns, err := netlab.New(fmt.Sprintf("synqbench-%d-%s", os.Getpid(), wname))
	if err != nil {
		return nil, err
	}
	e := &procEnv{wname: wname, ns: ns}
	for k, v := range map[string]string{"net.ipv4.ip_local_port_range": "10000 65000", "net.ipv4.tcp_tw_reuse": "1",
		"net.core.somaxconn": "4096", "net.ipv4.tcp_max_syn_backlog": "4096"} {
		if err := ns.Sysctl(k, v); err != nil {
			e.close()
			return nil, err
		}
	}
	if e.dir, err = os.MkdirTemp("", "synqbench-"+wname); err != nil {
		e.close()
		return nil, err
	}
	argv := append([]string{"netns", "exec", ns.Name()}, server(e.dir)...)
	e.server = exec.Command("ip", argv...)
	e.server.Stdout, e.server.Stderr = nil, nil
	if err := e.server.Start(); err != nil {
		e.server = nil
		e.close()
		return nil, fmt.Errorf("start %s: %w", argv[3], err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for i := 0; ; i++ {
		var ok bool
		if r, err := ns.DialMany(context.Background(), addr, 1, time.Second); err == nil {
			ok = r.Established == 1
			r.Close()
		}
		if ok {
			break
		}
		if i == 100 {
			e.close()
			return nil, fmt.Errorf("%s: %s does not answer after 10 s", wname, addr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return e, nil
}

const nginxConf = `worker_processes 1;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 4096; }
http {
	access_log off;
	keepalive_requests 100000000;
	keepalive_timeout 60s;
	client_body_temp_path %[1]s;
	proxy_temp_path %[1]s;
	fastcgi_temp_path %[1]s;
	uwsgi_temp_path %[1]s;
	scgi_temp_path %[1]s;
	server {
		listen 127.0.0.1:8080 backlog=4096;
		location / { return 200 "hello\n"; }
	}
}
`

func nginxServer(dir string) []string {
	conf := filepath.Join(dir, "nginx.conf")
	_ = os.WriteFile(conf, []byte(fmt.Sprintf(nginxConf, dir)), 0o644)
	return []string{"nginx", "-c", conf, "-p", dir}
}

var (
	abComplete  = regexp.MustCompile(`Complete requests:\s+(\d+)`)
	abFailed    = regexp.MustCompile(`Failed requests:\s+(\d+)`)
	wrkRequests = regexp.MustCompile(`(\d+) requests in`)
)

func secs(d time.Duration) string { return strconv.Itoa(max(1, int(d.Round(time.Second).Seconds()))) }

func newWorkload(name string, conc int) (workload, error) {
	switch name {
	case "churn":
		return newChurnEnv(conc)
	case "nginx-ab", "nginx-wrk":
		if _, err := exec.LookPath("nginx"); err != nil {
			return nil, errors.New("nginx not installed (make bench-deps)")
		}
		e, err := newProcEnv(name, nginxServer, 8080)
		if err != nil {
			return nil, err
		}
		if name == "nginx-ab" {
			// -t implies -n 50000: -n after it lifts the cap.
			e.client = func(d time.Duration) []string {
				return []string{"ab", "-q", "-c", "8", "-t", secs(d), "-n", "100000000", "http://127.0.0.1:8080/"}
			}
			e.ops = func(out string, _ time.Duration) (float64, error) {
				m := abComplete.FindStringSubmatch(out)
				if m == nil {
					return 0, errors.New("no Complete requests line")
				}
				n, _ := strconv.ParseFloat(m[1], 64)
				if f := abFailed.FindStringSubmatch(out); f != nil && f[1] != "0" {
					fmt.Fprintf(os.Stderr, "nginx-ab: %s failed requests\n", f[1])
				}
				return n, nil
			}
		} else {
			e.client = func(d time.Duration) []string {
				return []string{"wrk", "-t", "2", "-c", "16", "-d", secs(d) + "s", "http://127.0.0.1:8080/"}
			}
			e.ops = func(out string, _ time.Duration) (float64, error) {
				m := wrkRequests.FindStringSubmatch(out)
				if m == nil {
					return 0, errors.New("no requests line")
				}
				return strconv.ParseFloat(m[1], 64)
			}
		}
		return e, nil
	case "redis-get":
		if _, err := exec.LookPath("redis-server"); err != nil {
			return nil, errors.New("redis-server not installed (make bench-deps)")
		}
		e, err := newProcEnv(name, func(dir string) []string {
			return []string{"redis-server", "--bind", "127.0.0.1", "--port", "6379", "--save", "", "--appendonly", "no",
				"--dir", dir, "--daemonize", "no", "--loglevel", "warning"}
		}, 6379)
		if err != nil {
			return nil, err
		}
		e.rate = 20000
		e.client = func(d time.Duration) []string {
			n := max(1000, int(e.rate*d.Seconds()))
			e.lastN = n
			return []string{"redis-benchmark", "-h", "127.0.0.1", "-p", "6379", "-t", "get", "-c", "16", "-n", strconv.Itoa(n), "-q"}
		}
		e.ops = func(out string, _ time.Duration) (float64, error) {
			if !strings.Contains(out, "GET") {
				return 0, errors.New("no GET line")
			}
			return float64(e.lastN), nil
		}
		return e, nil
	}
	return nil, fmt.Errorf("unknown workload %q", name)
}
