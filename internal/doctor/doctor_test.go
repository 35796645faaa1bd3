package doctor

import (
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/synq-trace/synq/internal/aggregate"
	"github.com/synq-trace/synq/internal/sockstate"
	"github.com/synq-trace/synq/tracer"
)

func n64(v int64) *int64 { return &v }

func TestRecognize(t *testing.T) {
	for _, c := range []struct {
		p    Proc
		want string
		in   string
	}{
		{Proc{Comm: "nginx", Exe: "/usr/sbin/nginx"}, "nginx", "backlog="},
		{Proc{Comm: "redis-server", Exe: "/usr/bin/redis-server"}, "redis", "tcp-backlog"},
		{Proc{Comm: "haproxy", Exe: "/usr/sbin/haproxy"}, "haproxy", "backlog N"},
		{Proc{Comm: "gunicorn", Exe: "/usr/bin/python3.11", Cmdline: []string{"/usr/bin/python3", "/usr/local/bin/gunicorn", "app:app"}}, "gunicorn", "--backlog"},
		{Proc{Comm: "python3", Exe: "/usr/bin/python3.11", Cmdline: []string{"python3", "-m", "http.server"}}, "python", "request_queue_size"},
		{Proc{Comm: "node", Exe: "/usr/bin/node"}, "node", "backlog"},
		{Proc{Comm: "java", Exe: "/usr/lib/jvm/java-17/bin/java"}, "java", "SO_BACKLOG"},
		{Proc{Comm: "api", Exe: "/srv/api", Go: true}, "go", "somaxconn"},
		{Proc{Comm: "mystery", Exe: "/opt/mystery"}, "", "mystery"},
	} {
		s := Recognize(&c.p)
		if s.Name != c.want || !strings.Contains(s.Setting, c.in) {
			t.Errorf("%s: %q %q, want %q with %q", c.p.Exe, s.Name, s.Setting, c.want, c.in)
		}
	}
	if got := Recognize(&Proc{Comm: "nginx", Exe: "/usr/sbin/nginx"}).SettingFor(8080, 4096); !strings.Contains(got, "listen 8080 backlog=4096;") {
		t.Errorf("nginx setting for 8080/4096: %q", got)
	}
}

// ReadProc on this test process: a Go program, running.
func TestReadProc(t *testing.T) {
	p := ReadProc("/proc", os.Getpid())
	if p == nil || p.PID != os.Getpid() || p.Comm == "" || p.State != "R" || !p.Go || len(p.Cmdline) == 0 {
		t.Fatalf("ReadProc(self) = %+v", p)
	}
	if ReadProc("/proc", 0) != nil {
		t.Error("ReadProc(0) found a process")
	}
}

func row(port uint16, pid int, f func(*aggregate.Row)) aggregate.Row {
	r := aggregate.Row{Endpoint: tracer.Endpoint{Netns: 7, Addr: netip.MustParseAddr("127.0.0.1"), Port: port},
		Owners:      []aggregate.Owner{{PID: pid, Comm: "srv"}},
		AcceptQueue: aggregate.Queue{Max: 16}, SynQueue: aggregate.Queue{Max: 16}, DropsExact: true}
	f(&r)
	return r
}

func input(rows ...aggregate.Row) Input {
	return Input{
		Frame: &aggregate.Frame{Interval: 10 * time.Second, Tier: tracer.TierFentry, Rows: rows},
		Netns: map[uint32]*Netns{7: {Inode: 7, Sysctls: Sysctls{Somaxconn: n64(4096), Syncookies: n64(1)},
			Delta: map[string]int64{"TcpExt.ListenOverflows": 30, "TcpExt.ListenDrops": 30, "TcpExt.TCPReqQFullDrop": 0}}},
		Procs: map[int]*Proc{
			1: {PID: 1, Comm: "srv", State: "S"},
			2: {PID: 2, Comm: "srv", State: "T"},
			3: {PID: 3, Comm: "srv", State: "S"},
		},
		States: sockstate.DefaultThresholds,
	}
}

// Worst first; a healthy listener gets one line; a stopped server is not a
// queue too small.
func TestDiagnoseOrder(t *testing.T) {
	z := func(v uint64) *uint64 { return &v }
	in := input(
		row(80, 3, func(r *aggregate.Row) { r.Accepts = 100 }),
		row(81, 1, func(r *aggregate.Row) {
			r.Accepts, r.AckOverflow, r.AcceptQueueFull, r.Drops = 50, 10, z(20), 30
			r.SynQueueFull, r.SynOther = z(0), z(0)
		}),
		row(82, 2, func(r *aggregate.Row) { r.AcceptQueue.Now = 17 }),
	)
	fs := Diagnose(in)
	var kinds []string
	for _, f := range fs {
		kinds = append(kinds, f.Kind)
	}
	if got := strings.Join(kinds, " "); got != "not-accepting app-backlog healthy" {
		t.Fatalf("kinds %q", got)
	}
	if !Found(fs) || Found(fs[2:]) {
		t.Error("Found: want true with findings, false for a healthy listener alone")
	}
	if !strings.Contains(fs[0].Action, "kill -CONT 2") {
		t.Errorf("stopped: %q", fs[0].Action)
	}
	if !strings.Contains(fs[1].Limit, "listen(): 16, below net.core.somaxconn 4096") {
		t.Errorf("app backlog: %q", fs[1].Limit)
	}
}

// tcp_syncookies=2: cookies are a notice; on the tracepoint tier a SYN
// drop whose reason the netns's counters do not settle says so.
func TestDiagnoseCookiesAndTier(t *testing.T) {
	z := func(v uint64) *uint64 { return &v }
	in := input(row(80, 1, func(r *aggregate.Row) { r.Accepts, r.Cookies = 5, z(40) }))
	in.Netns[7].Sysctls.Syncookies = n64(2)
	fs := Diagnose(in)
	if len(fs) != 1 || fs[0].Kind != KindCookies || fs[0].Severity != Notice {
		t.Fatalf("%+v", fs)
	}
	in = input(row(80, 1, func(r *aggregate.Row) {
		r.Accepts, r.Drops, r.SynDerived = 5, 9, z(9)
		r.AcceptQueue.Peak = 3
	}))
	in.Frame.Tier = tracer.TierTracepoint
	in.Netns[7].Delta = map[string]int64{"TcpExt.ListenDrops": 20, "TcpExt.ListenOverflows": 0, "TcpExt.TCPReqQFullDrop": 12}
	fs = Diagnose(in)
	if len(fs) != 1 || fs[0].Kind != KindSynQueue || !strings.Contains(fs[0].Inferred, "cannot see why a SYN is dropped") {
		t.Fatalf("%+v", fs)
	}
}

func TestDiagnoseTimeWait(t *testing.T) {
	in := input(row(80, 1, func(r *aggregate.Row) { r.Accepts = 5 }))
	c := &sockstate.Counts{Ports: map[sockstate.PortState]int{{Port: 80, State: sockstate.TimeWait}: 5000}}
	c.States[sockstate.TimeWait] = 5000
	in.Netns[7].States = c
	in.Netns[7].Delta["TcpExt.TCPTimeWaitOverflow"] = 3
	fs := Diagnose(in)
	if len(fs) != 1 || fs[0].Kind != KindTimeWait || fs[0].Severity != Warning {
		t.Fatalf("%+v", fs)
	}
}

// A running server that accepts a trickle while its queue is full, and one
// whose accept latency is far above its neighbours': not accepting.
func TestDiagnoseStarved(t *testing.T) {
	in := input(row(80, 1, func(r *aggregate.Row) {
		r.Accepts, r.Enqueued, r.Drops, r.AckOverflow = 2, 60, 40, 40
		r.AcceptQueue.Peak = 17
	}))
	in.Procs[1].State = "R"
	fs := Diagnose(in)
	if len(fs) != 1 || fs[0].Kind != KindNotAccepting || !strings.Contains(fs[0].Action, "running but never gets to accept()") {
		t.Fatalf("%+v", fs)
	}
	slow := func(p99 time.Duration) func(*aggregate.Row) {
		return func(r *aggregate.Row) {
			r.Accepts, r.Enqueued, r.AcceptQueue.Now = 10, 10, 1
			r.Latency = aggregate.Summary{Count: 10, P99: p99}
		}
	}
	fs = Diagnose(input(row(80, 1, slow(3*time.Second)), row(81, 3, slow(time.Millisecond)), row(82, 3, slow(2*time.Millisecond))))
	if fs[0].Kind != KindNotAccepting || fs[0].Listener.Port != 80 || fs[1].Kind != KindHealthy {
		t.Fatalf("%+v", fs)
	}
}
