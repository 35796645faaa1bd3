package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/synq-trace/synq/internal/kerneltest"
	"github.com/synq-trace/synq/internal/netlab"
	"github.com/urfave/cli/v2"
)

// serveApp is synq's app with the serve command, whether or not main.go
// registers it.
func serveApp(stdout, stderr io.Writer) *cli.App {
	app := newApp()
	registered := false
	for _, c := range app.Commands {
		registered = registered || c.Name == "serve"
	}
	if !registered {
		cmd := serveCommand()
		cmd.OnUsageError = app.OnUsageError
		app.Commands = append(app.Commands, cmd)
	}
	app.Writer, app.ErrWriter = stdout, stderr
	return app
}

// serveCLI runs `synq serve args...` until ctx is done, as runWith does.
func serveCLI(ctx context.Context, stderr io.Writer, args ...string) int {
	app := serveApp(io.Discard, stderr)
	if err := app.RunContext(ctx, append([]string{"synq", "serve"}, args...)); err != nil {
		fmt.Fprintf(stderr, "synq: %v\n", err)
		return exitCode(err)
	}
	return 0
}

func oneLine(t *testing.T, stderr, want string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "synq: ") || !strings.Contains(lines[0], want) {
		t.Errorf("stderr %q, want one line \"synq: ...%s...\"", stderr, want)
	}
}

// Bad input: one line, exit 2, before anything is bound or loaded.
func TestServeBadInput(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--listen", "9464"}, "invalid --web.listen-address \"9464\""},
		{[]string{"--web.listen-address", "9464"}, "invalid --web.listen-address \"9464\""},
		{[]string{"--web.config.file", "/nonexistent/web.yml"}, "invalid --web.config.file /nonexistent/web.yml: no such file or directory"},
		{[]string{"--web.config.file", writeTemp(t, "web.yml", "tls_server_config:\n  cert_file: /nonexistent.crt\n  key_file: /nonexistent.key\n")}, "invalid --web.config.file"},
		{[]string{"--web.config.file", writeTemp(t, "web.yml", "basic_auth_users:\n  bob: not-a-bcrypt-hash\n")}, "invalid --web.config.file"},
		{[]string{"--web.config.file", writeTemp(t, "web.yml", "no_such_key: 1\n")}, "invalid --web.config.file"},
		{[]string{"--listen", "127.0.0.1:99999"}, "port must be 0-65535"},
		{[]string{"--listen", "127.0.0.1:http"}, "port must be 0-65535"},
		{[]string{"--max-listeners", "0"}, "invalid --max-listeners 0"},
		{[]string{"--expire", "0s"}, "invalid --expire 0s"},
		{[]string{"--expire", "soon"}, "--expire: want a duration like 10s, got \"soon\""},
		{[]string{"--tier", "uprobe"}, "unknown tier \"uprobe\""},
		{[]string{"--netns", "no-such-netns"}, "netns \"no-such-netns\" does not exist"},
		{[]string{"--runtime-endpoint", "tcp://127.0.0.1:10010"}, "invalid --runtime-endpoint: runtime endpoint \"tcp://127.0.0.1:10010\": only unix sockets"},
		{[]string{"--runtime-endpoint", ""}, "--runtime-endpoint: invalid value \"\": empty"},
		{[]string{"extra"}, "takes no arguments"},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			var stderr kerneltest.Buffer
			if code := serveCLI(context.Background(), &stderr, c.args...); code != 2 {
				t.Errorf("exit code %d, want 2 (stderr %q)", code, stderr.String())
			}
			oneLine(t, stderr.String(), c.want)
		})
	}
}

// An address in use: one line, exit 1, nothing loaded.
func TestServeAddressInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var stderr kerneltest.Buffer
	if code := serveCLI(context.Background(), &stderr, "--listen", ln.Addr().String()); code != 1 {
		t.Errorf("exit code %d, want 1 (stderr %q)", code, stderr.String())
	}
	oneLine(t, stderr.String(), "cannot listen on "+ln.Addr().String()+": address already in use")
}

// A non-loopback --listen is said once, before anything else can fail (here
// the kernel BTF, as root, or the privileges, as anyone else).
func TestServeNonLoopbackWarns(t *testing.T) {
	var stderr kerneltest.Buffer
	code := serveCLI(context.Background(), &stderr, "--listen", "0.0.0.0:0", "--btf", filepath.Join(t.TempDir(), "missing"))
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	if code != 1 || len(lines) != 2 || !strings.Contains(lines[0], "warning: --web.listen-address 0.0.0.0:0 is not a loopback address") {
		t.Errorf("exit %d, stderr %q: want exit 1, the warning, then the failure", code, stderr.String())
	}
	// Protected by basic auth: no warning, only the failure.
	stderr = kerneltest.Buffer{}
	cfg := writeTemp(t, "web.yml", "basic_auth_users:\n  prometheus: "+bcryptHash(t, "secret")+"\n")
	code = serveCLI(context.Background(), &stderr, "--web.listen-address", "0.0.0.0:0", "--web.config.file", cfg, "--btf", filepath.Join(t.TempDir(), "missing"))
	if lines := strings.Split(strings.TrimSpace(stderr.String()), "\n"); code != 1 || len(lines) != 1 || strings.Contains(lines[0], "warning") {
		t.Errorf("with basic auth: exit %d, stderr %q: want exit 1 and only the failure", code, stderr.String())
	}
}

func TestCheckListen(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:9464": true, "127.0.0.2:1": true, "[::1]:9464": true, "localhost:9464": true,
		":9464": false, "0.0.0.0:9464": false, "[::]:9464": false, "10.0.0.1:9464": false, "node1:9464": false,
	} {
		got, err := checkListen(addr)
		if err != nil || got != want {
			t.Errorf("checkListen(%q) = %v, %v; want loopback %v", addr, got, err, want)
		}
	}
}

func prometheusBinary(t *testing.T) string {
	t.Helper()
	return debianBinary(t, "prometheus", "prometheus")
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startPrometheus runs a private Prometheus on loopback that scrapes target
// every second, with its storage in a temporary directory.
func startPrometheus(t *testing.T, bin, target string) string {
	t.Helper()
	return startPrometheusWith(t, bin, fmt.Sprintf(`  - job_name: synq
    static_configs:
      - targets: [%q]
`, target))
}

// startPrometheusWith runs a private Prometheus with these scrape_configs
// entries, every second.
func startPrometheusWith(t *testing.T, bin, scrapeConfigs string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
`+scrapeConfigs), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	var logs kerneltest.Buffer
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus log:\n%s", logs.String())
		}
	})
	base := "http://" + addr
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready after 15s: %v\n%s", err, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// promQuery runs an instant query and returns the value of its only sample;
// ok is false when the result is empty.
func promQuery(t *testing.T, base, q string) (v float64, ok bool) {
	t.Helper()
	return promQueryAt(t, base, q, time.Time{})
}

// promMillis formats a time as the query API takes it: seconds, ms precision.
func promMillis(at time.Time) string {
	return strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64)
}

// promSampleSpan returns the timestamps of the first and the last sample
// Prometheus stored of the series q selects (the same scrapes for all).
func promSampleSpan(t *testing.T, base, q string) (first, last time.Time) {
	t.Helper()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Values [][2]any `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	promAPI(t, base+"/api/v1/query?query="+url.QueryEscape(q+"[10m]"), &r)
	if r.Status != "success" || len(r.Data.Result) == 0 || len(r.Data.Result[0].Values) == 0 {
		t.Fatalf("query %s[10m]: %s %s, %d series", q, r.Status, r.Error, len(r.Data.Result))
	}
	ts := func(v any) time.Time {
		f, _ := v.(float64)
		return time.UnixMilli(int64(f*1000 + 0.5))
	}
	vs := r.Data.Result[0].Values
	return ts(vs[0][0]), ts(vs[len(vs)-1][0])
}

// promQueryAt is promQuery evaluated at a given time (zero: now).
func promQueryAt(t *testing.T, base, q string, at time.Time) (v float64, ok bool) {
	t.Helper()
	u := base + "/api/v1/query?query=" + url.QueryEscape(q)
	if !at.IsZero() {
		u += "&time=" + promMillis(at)
	}
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	promAPI(t, u, &r)
	if r.Status != "success" {
		t.Fatalf("query %s: %s", q, r.Error)
	}
	if len(r.Data.Result) == 0 {
		return 0, false
	}
	if len(r.Data.Result) > 1 {
		t.Fatalf("query %s: %d samples, want one", q, len(r.Data.Result))
	}
	s, _ := r.Data.Result[0].Value[1].(string)
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("query %s: value %q", q, s)
	}
	return v, true
}

// waitQuery polls q until it has a sample for which ok returns true.
func waitQuery(t *testing.T, base, q string, timeout time.Duration, ok func(float64) bool) float64 {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		v, found := promQuery(t, base, q)
		if found && ok(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s = %v (found %v)", timeout, q, v, found)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// startServe runs `synq serve --web.listen-address 127.0.0.1:0 args...` (on
// SYNQ_TEST_TIER's tier, if set) until the test ends, and returns the
// address it serves on.
func startServe(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stderr kerneltest.Buffer
	done := make(chan int, 1)
	args = append([]string{"--web.listen-address", "127.0.0.1:0"}, args...)
	args = append(args, kerneltest.TierArgs()...)
	go func() { done <- serveCLI(ctx, &stderr, args...) }()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("synq serve exited %d: %s", code, stderr.String())
			}
		case <-time.After(10 * time.Second):
			t.Errorf("synq serve did not stop within 10s of cancel")
		}
	})
	serving := regexp.MustCompile(`serving metrics on https?://([^/]+)/metrics`)
	var target string
	for deadline := time.Now().Add(15 * time.Second); target == ""; time.Sleep(50 * time.Millisecond) {
		if m := serving.FindStringSubmatch(stderr.String()); m != nil {
			target = m[1]
		}
		select {
		case code := <-done:
			done <- code
			t.Fatalf("synq serve exited %d: %s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("synq serve did not start in 15s: %s", stderr.String())
		}
	}
	t.Logf("%s", strings.TrimSpace(stderr.String()))
	return target
}

// The whole path, with a real Prometheus: drops in a private namespace, as
// the kernel counts them there, arrive in Prometheus exactly.
func TestKernelServePrometheus(t *testing.T) {
	kerneltest.Root(t)
	promBin := prometheusBinary(t)
	nsName := fmt.Sprintf("synq-serve-test-%d", os.Getpid()) // pid-unique: parallel runs
	ns, l := testListener(t, nsName, 1)

	target := startServe(t, "--netns", nsName)
	base := startPrometheus(t, promBin, target)

	sel := fmt.Sprintf(`netns="%d",addr="127.0.0.1",port="%d"`, ns.Inode(), l.Port())
	// Prometheus has the listener's series (at 0) before any drop.
	waitQuery(t, base, fmt.Sprintf(`sum(synq_listen_drops_total{%s})`, sel), 10*time.Second, func(v float64) bool { return v == 0 })
	if v := waitQuery(t, base, fmt.Sprintf(`synq_accept_queue_max{%s}`, sel), 5*time.Second, func(float64) bool { return true }); v != 1 {
		t.Errorf("synq_accept_queue_max = %v, the listener's backlog is 1", v)
	}

	// A backlog-1 listener that never accepts, dialed by clients that delay
	// their final ACK: SYN-side and ACK-side drops (tracer/kernel_test.go).
	want := overflow(t, ns, l)

	q := fmt.Sprintf(`sum(synq_listen_drops_total{%s})`, sel)
	waitQuery(t, base, q, 10*time.Second, func(v float64) bool { return v >= float64(want) })
	// One more scrape: the value must have settled at the kernel's.
	time.Sleep(1500 * time.Millisecond)
	got, _ := promQuery(t, base, q)
	if got != float64(want) {
		t.Errorf("Prometheus has %s = %v, the netns counted ListenDrops %d", q, got, want)
	}
	// increase() over exactly the stored samples, from the first (0, before
	// any drop) to the last: Prometheus extrapolates neither end, and the
	// increase is the kernel's.
	first, last := promSampleSpan(t, base, fmt.Sprintf(`synq_listen_drops_total{%s}`, sel))
	incQ := fmt.Sprintf(`sum(increase(synq_listen_drops_total{%s}[%dms]))`, sel, last.Sub(first).Milliseconds()+1)
	inc, ok := promQueryAt(t, base, incQ, last)
	t.Logf("%s at the last sample = %v", incQ, inc)
	if !ok || inc != float64(want) {
		t.Errorf("Prometheus has %s = %v (found %v), the netns counted ListenDrops %d", incQ, inc, ok, want)
	}
	if v, ok := promQuery(t, base, `synq_reconcile_coverage_ratio{counter="ListenDrops"}`); !ok || v != 1 {
		t.Errorf("ListenDrops coverage %v (found %v), want 1: every drop of the netns is its listener's", v, ok)
	}
	if v, ok := promQuery(t, base, `synq_kernel_netstat_total{name="TcpExt_ListenDrops"}`); !ok || v < float64(want) {
		t.Errorf("synq_kernel_netstat_total{name=\"TcpExt_ListenDrops\"} = %v (found %v), want at least %d", v, ok, want)
	}
	if v, ok := promQuery(t, base, `synq_events_lost_total`); !ok || v != 0 {
		t.Errorf("synq_events_lost_total = %v (found %v), want 0", v, ok)
	}
	if v, ok := promQuery(t, base, `up{job="synq"}`); !ok || v != 1 {
		t.Errorf("up = %v", v)
	}

	checkDashboardQueries(t, base)

	// The real scrape passes Prometheus' linter, and /healthz is happy.
	resp, err := http.Get("http://" + target + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// promtool comes with the prometheus binary (the same Debian package).
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		promtool = filepath.Join(filepath.Dir(promBin), "promtool")
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	for _, m := range []string{"synq_listen_drops_total{", "synq_accept_queue_length{", "synq_accept_latency_seconds_bucket{",
		"synq_kernel_netstat_total{", "synq_reconcile_coverage_ratio{", "synq_build_info{", "synq_events_lost_total "} {
		if !bytes.Contains(body, []byte(m)) {
			t.Errorf("the scrape promtool checked has no %s", m)
		}
	}
	if code, hb := healthz(t, target); code != 200 || hb != "ok\n" {
		t.Errorf("/healthz: %d %q", code, hb)
	}
}

// sample is one line of the text exposition format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

var (
	reSample = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$`)
	reLabel  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)
)

// scrapeSamples GETs /metrics and returns the samples of synq's own metrics.
func scrapeSamples(t *testing.T, target string) []sample {
	t.Helper()
	resp, err := http.Get("http://" + target + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d %v", resp.StatusCode, err)
	}
	var out []sample
	for _, line := range strings.Split(string(body), "\n") {
		m := reSample.FindStringSubmatch(line)
		if m == nil || !strings.HasPrefix(m[1], "synq_") {
			continue
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		s := sample{name: m[1], labels: map[string]string{}, value: v}
		for _, lm := range reLabel.FindAllStringSubmatch(m[2], -1) {
			s.labels[lm[1]] = lm[2]
		}
		out = append(out, s)
	}
	return out
}

// ports lists the port labels a metric has series for.
func ports(ss []sample, name string) []string {
	var out []string
	for _, s := range ss {
		if s.name == name && !slices.Contains(out, s.labels["port"]) {
			out = append(out, s.labels["port"])
		}
	}
	slices.Sort(out)
	return out
}

func sampleSum(ss []sample, name string) (sum float64) {
	for _, s := range ss {
		if s.name == name {
			sum += s.value
		}
	}
	return sum
}

func sampleOf(ss []sample, name, port string) (float64, bool) {
	for _, s := range ss {
		if s.name == name && s.labels["port"] == port {
			return s.value, true
		}
	}
	return 0, false
}

// --max-listeners and --expire on a real kernel: of two listeners, the one
// with drops gets the only slot and the idle one is folded into
// port="other" (its queue gauges summed there); the sum over every series
// is the kernel's ListenDrops. When the busy listener closes, it stays
// exported (frozen, without gauges) until --expire, then its series go.
func TestKernelServeFoldAndExpire(t *testing.T) {
	nsName := fmt.Sprintf("synq-serve-fold-%d", os.Getpid()) // pid-unique: parallel runs
	ns, busy := testListener(t, nsName, 1)
	idle := kerneltest.Listen(t, ns, "tcp4", "127.0.0.1:0", 7)
	const expire = 3 * time.Second
	target := startServe(t, "--netns", nsName, "--max-listeners", "1", "--expire", expire.String())
	busyPort, idlePort := strconv.Itoa(int(busy.Port())), strconv.Itoa(int(idle.Port()))

	// Drops on the busy listener before the first scrape ranks the two.
	want := overflow(t, ns, busy)

	m := scrapeSamples(t, target)
	if got := ports(m, "synq_listen_drops_total"); !slices.Equal(got, []string{busyPort, "other"}) {
		t.Fatalf("synq_listen_drops_total series of ports %v, want [%s other] (:%s folded)", got, busyPort, idlePort)
	}
	if got := sampleSum(m, "synq_listen_drops_total"); got != float64(want) {
		t.Errorf("sum of synq_listen_drops_total %v, the netns counted ListenDrops %d", got, want)
	}
	if v, ok := sampleOf(m, "synq_accept_queue_max", "other"); !ok || v != 7 {
		t.Errorf("other's synq_accept_queue_max %v (found %v), want the folded listener's backlog 7", v, ok)
	}
	if v, ok := sampleOf(m, "synq_accept_queue_max", busyPort); !ok || v != 1 {
		t.Errorf(":%s synq_accept_queue_max %v (found %v), want 1", busyPort, v, ok)
	}
	for _, s := range m {
		if s.labels["port"] == "other" && (s.labels["netns"] != "other" || s.labels["addr"] != "other") {
			t.Errorf("folded series with listener labels %v", s.labels)
		}
	}

	// The busy listener closes: frozen, without gauges, until --expire.
	busy.Close()
	closed := time.Now()
	m = scrapeSamples(t, target)
	if time.Since(closed) < expire {
		if got := sampleSum(m, "synq_listen_drops_total"); got != float64(want) {
			t.Errorf("after close: sum of synq_listen_drops_total %v, want %d", got, want)
		}
		if !slices.Contains(ports(m, "synq_listen_drops_total"), busyPort) {
			t.Errorf("closed listener :%s not exported before --expire: %v", busyPort, ports(m, "synq_listen_drops_total"))
		}
		if _, ok := sampleOf(m, "synq_accept_queue_length", busyPort); ok {
			t.Errorf("closed listener :%s still has queue gauges", busyPort)
		}
	}
	time.Sleep(expire + time.Second - time.Since(closed))
	m = scrapeSamples(t, target)
	for _, s := range m {
		if s.labels["port"] == busyPort {
			t.Errorf("closed listener :%s still exported %v after --expire %v: %s %v", busyPort, time.Since(closed), expire, s.name, s.labels)
		}
	}
	// Its slot is free: the open listener gets it.
	if v, ok := sampleOf(m, "synq_accept_queue_max", idlePort); !ok || v != 7 {
		t.Errorf(":%s synq_accept_queue_max %v (found %v) once the slot is free, want 7", idlePort, v, ok)
	}
}

// checkDashboardQueries runs every query of the Grafana dashboard, its
// variables filled in as Grafana would, on the real Prometheus: each must
// parse, and each whose metrics synq exported here must return data.
//
// vals are variable, value pairs (a regexp, as Grafana passes a selection);
// the others select everything.
func checkDashboardQueries(t *testing.T, base string, vals ...string) {
	t.Helper()
	b, err := os.ReadFile("../../deploy/grafana/synq.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	// Absent, not 0, on the tracepoint tier: panels of them may be empty.
	present := map[string]bool{}
	for _, m := range []string{"synq_syn_total", "synq_syn_cookies_total"} {
		present[m] = len(promMust(t, base, m)) > 0
	}
	sel := map[string]string{"instance": ".*", "netns": ".*", "namespace": ".*", "pod": ".*"}
	for i := 0; i+1 < len(vals); i += 2 {
		sel[vals[i]] = vals[i+1]
	}
	repl := []string{"$__rate_interval", "1m", "$__interval", "15s"}
	for k, v := range sel {
		repl = append(repl, `"$`+k+`"`, strconv.Quote(v))
	}
	vars := strings.NewReplacer(repl...)
	n := 0
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			q := vars.Replace(tg.Expr)
			res, errMsg := promQueryAll(t, base, q)
			n++
			if errMsg != "" {
				t.Errorf("dashboard panel %q: Prometheus rejects %s: %s", p.Title, q, errMsg)
				continue
			}
			optional := false
			for m, ok := range present {
				optional = optional || (!ok && strings.Contains(q, m))
			}
			if len(res) == 0 && !optional {
				t.Errorf("dashboard panel %q: %s returns nothing", p.Title, q)
			}
		}
	}
	t.Logf("%d dashboard queries evaluated by Prometheus", n)
}

// promQueryAll runs an instant query: its result (one entry per series),
// or Prometheus' error.
func promQueryAll(t *testing.T, base, q string) ([]json.RawMessage, string) {
	t.Helper()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	promAPI(t, base+"/api/v1/query?query="+url.QueryEscape(q), &r)
	if r.Status != "success" {
		return nil, r.Status + ": " + r.Error
	}
	return r.Data.Result, ""
}

func promMust(t *testing.T, base, q string) []json.RawMessage {
	t.Helper()
	res, errMsg := promQueryAll(t, base, q)
	if errMsg != "" {
		t.Fatalf("query %s: %s", q, errMsg)
	}
	return res
}

// Accept latency on a real kernel, from the in-kernel histogram (serve streams
// no accept events): n connections wait in the accept queue for at least
// hold before the application accepts them. The histogram counts exactly n,
// no bucket below hold holds any, and the sum lies between n·hold and the
// time the whole exchange took.
func TestKernelServeAcceptLatency(t *testing.T) {
	nsName := fmt.Sprintf("synq-serve-latency-%d", os.Getpid()) // pid-unique: parallel runs
	ns, ln := testListener(t, nsName, 16)
	target := startServe(t, "--netns", nsName)
	port := strconv.Itoa(int(ln.Port()))

	const n, hold = 6, 300 * time.Millisecond
	start := time.Now()
	res, err := ns.DialMany(context.Background(), ln.Addr().String(), n, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	if err := ln.WaitQueue(n, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(hold)
	for range n {
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	took := time.Since(start)

	m := scrapeSamples(t, target)
	if v, _ := sampleOf(m, "synq_accepted_total", port); v != n {
		t.Errorf("synq_accepted_total{port=%s} %v, want %d", port, v, n)
	}
	if v, _ := sampleOf(m, "synq_accept_latency_seconds_count", port); v != n {
		t.Errorf("synq_accept_latency_seconds_count{port=%s} %v, want %d", port, v, n)
	}
	sum, _ := sampleOf(m, "synq_accept_latency_seconds_sum", port)
	if sum < n*hold.Seconds() || sum > n*took.Seconds() {
		t.Errorf("synq_accept_latency_seconds_sum{port=%s} %v, want within [%v, %v]", port, sum, n*hold.Seconds(), n*took.Seconds())
	}
	buckets := 0
	for _, s := range m {
		if s.name != "synq_accept_latency_seconds_bucket" || s.labels["port"] != port {
			continue
		}
		buckets++
		le, err := strconv.ParseFloat(s.labels["le"], 64)
		if err != nil {
			le = math.Inf(1)
		}
		if le < hold.Seconds() && s.value != 0 {
			t.Errorf("bucket le=%s holds %v accepts, all waited at least %v", s.labels["le"], s.value, hold)
		}
		if le >= took.Seconds() && s.value != n {
			t.Errorf("bucket le=%s holds %v accepts, want all %d (the test took %v)", s.labels["le"], s.value, n, took)
		}
	}
	if buckets == 0 {
		t.Errorf("no synq_accept_latency_seconds_bucket for port %s", port)
	}
}

// promAPI GETs a Prometheus HTTP API URL and decodes its JSON answer into v.
func promAPI(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

// overflow dials a small-backlog listener that never accepts 8 times, the
// clients delaying their final ACK (SYN-side and ACK-side drops, as in
// tracer/kernel_test.go), and returns the netns' ListenDrops delta, which
// must not be 0.
func overflow(t *testing.T, ns *netlab.Netns, l *netlab.Listener) uint64 {
	t.Helper()
	return dialDrops(t, ns, l, 8, 2500*time.Millisecond, netlab.DelayHandshakeACK())
}

// dialDrops dials l n times with opts, waits for retransmits, resets every
// client and returns the namespace's ListenDrops delta (which must move).
func dialDrops(t *testing.T, ns *netlab.Netns, l *netlab.Listener, n int, timeout time.Duration, opts ...netlab.SockOpt) uint64 {
	t.Helper()
	c0, err := ns.Counters()
	if err != nil {
		t.Fatal(err)
	}
	res, err := ns.DialMany(context.Background(), l.Addr().String(), n, timeout, opts...)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // delayed ACKs, SYN-ACK retransmits
	res.Close()                         // RST every client: the counters settle
	time.Sleep(200 * time.Millisecond)
	c1, err := ns.Counters()
	if err != nil {
		t.Fatal(err)
	}
	d := c1.Sub(c0)
	if d["TcpExt.ListenDrops"] == 0 {
		t.Fatal("the kernel counted no ListenDrops: the test did not overflow the listener")
	}
	t.Logf("netns ListenDrops delta %d (ListenOverflows %d, TCPReqQFullDrop %d)", d["TcpExt.ListenDrops"],
		d["TcpExt.ListenOverflows"], d["TcpExt.TCPReqQFullDrop"])
	return d["TcpExt.ListenDrops"]
}
