package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/synq-trace/synq/internal/identity/critest"
	"github.com/synq-trace/synq/internal/kerneltest"
	"github.com/synq-trace/synq/internal/netlab"
)

// podListener is a listener in a namespace of its own (the pod's), held
// only by a process in a kubepods-style cgroup (systemd driver, containerd;
// the cgroup helpers are the workload tests'): it never accepts, so its
// backlog of 1 overflows for real.
type podListener struct {
	ns          *netlab.Netns
	l           *netlab.Listener
	pid         int
	podUID, ctr string
}

func startPodListener(t *testing.T, name string) *podListener {
	t.Helper()
	p := &podListener{podUID: podUID(1), ctr: hexID(1)}
	// Cgroups first: their cleanup runs after the process is killed.
	rel := filepath.Join(fmt.Sprintf("synq-test-%d.slice", os.Getpid()), "kubepods.slice", "kubepods-burstable.slice",
		"kubepods-burstable-pod"+strings.ReplaceAll(p.podUID, "-", "_")+".slice", "cri-containerd-"+p.ctr+".scope")
	v2, systemd := cgroupMounts(t)
	var dirs []string
	for _, m := range []string{v2, systemd} {
		if m != "" {
			dirs = append(dirs, makeCgroup(t, m, rel))
		}
	}
	if len(dirs) == 0 {
		t.Skip("no cgroup hierarchy to place the pod's process in")
	}
	p.ns = kerneltest.NamedNetns(t, name)
	p.l = kerneltest.Listen(t, p.ns, "tcp4", "127.0.0.1:0", 1)
	f, err := p.l.TCPListener().File()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sleep", "3600")
	cmd.ExtraFiles = []*os.File{f}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	p.pid = cmd.Process.Pid
	for _, d := range dirs {
		if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(strconv.Itoa(p.pid)), 0o644); err != nil {
			t.Fatalf("move pid %d into %s: %v", p.pid, d, err)
		}
	}
	// The test lets go of the socket: the process in the pod holds it alone.
	f.Close()
	p.l.Close()
	return p
}

// waitFor polls ok until it holds or timeout passes.
func waitFor(timeout time.Duration, ok func() bool) (time.Duration, error) {
	start := time.Now()
	for !ok() {
		if time.Since(start) > timeout {
			return timeout, fmt.Errorf("not within %v", timeout)
		}
		time.Sleep(250 * time.Millisecond)
	}
	return time.Since(start), nil
}

// The whole path with a pod: a listener in a pod's own network namespace,
// held by a process in a kubepods cgroup, named by a CRI runtime over a unix
// socket, dropping for real. Through a real Prometheus: its drop series
// carry the pod's namespace, pod and container; synq_listener_info joins on
// them with the cgroup's container id and pod UID; the pod namespace's own
// kernel counters are exported, equal to its /proc/net/netstat, and its
// coverage is 1.
func TestKernelServePodIdentity(t *testing.T) {
	kerneltest.Root(t)
	promBin := prometheusBinary(t)
	name := fmt.Sprintf("synq-pod-%d", os.Getpid())
	pod := startPodListener(t, name)
	sock := filepath.Join(t.TempDir(), "cri.sock")
	rt, err := critest.Listen(sock, []critest.Container{{ID: pod.ctr, Name: "web", SandboxID: strings.Repeat("5", 64),
		Pod: "web-0", Namespace: "shop", PodUID: pod.podUID}})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()

	// Every namespace (no --netns): the pod's is not synq's own.
	target := startServe(t, "--runtime-endpoint", "unix://"+sock, "--max-listeners", "10000")
	// Every namespace of the host is walked at each scrape, whatever other
	// tests run beside this one: 2 s to answer.
	base := startPrometheusWith(t, promBin, fmt.Sprintf(`  - job_name: synq
    scrape_interval: 2s
    scrape_timeout: 2s
    static_configs:
      - targets: [%q]
`, target))
	ino := pod.ns.Inode()
	lsel := fmt.Sprintf(`netns="%d",addr="127.0.0.1",port="%d"`, ino, pod.l.Port())
	named := lsel + `,namespace="shop",pod="web-0",container="web"`
	if _, err := waitFor(30*time.Second, func() bool {
		v, ok := promQuery(t, base, fmt.Sprintf(`sum(synq_listen_drops_total{%s})`, named))
		return ok && v == 0
	}); err != nil {
		for _, sm := range scrapeSamples(t, target) {
			if sm.labels["port"] == strconv.Itoa(int(pod.l.Port())) {
				t.Logf("%s %v %v", sm.name, sm.labels, sm.value)
			}
		}
		t.Fatalf("the pod's listener has no series with its names")
	}
	kq := fmt.Sprintf(`synq_kernel_netstat_total{netns="%d",name="TcpExt_ListenDrops"}`, ino)
	waitQuery(t, base, kq, 20*time.Second, func(float64) bool { return true })

	want := overflow(t, pod.ns, pod.l)
	q := fmt.Sprintf(`sum(synq_listen_drops_total{%s})`, named)
	waitQuery(t, base, q, 20*time.Second, func(v float64) bool { return v >= float64(want) })
	time.Sleep(2500 * time.Millisecond) // one more scrape: settled
	c, err := pod.ns.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := promQuery(t, base, q); got != float64(want) {
		t.Errorf("%s = %v, the pod's netns counted ListenDrops %d", q, got, want)
	}
	if got, ok := promQuery(t, base, kq); !ok || got != float64(c["TcpExt.ListenDrops"]) {
		t.Errorf("%s = %v (found %v), the pod's /proc/net/netstat says %d", kq, got, ok, c["TcpExt.ListenDrops"])
	}
	// Its increase over the stored samples (the first before any drop) is
	// the netns' delta.
	first, last := promSampleSpan(t, base, kq)
	incQ := fmt.Sprintf(`increase(%s[%dms])`, kq, last.Sub(first).Milliseconds()+1)
	if inc, ok := promQueryAt(t, base, incQ, last); !ok || inc != float64(want) {
		t.Errorf("%s = %v (found %v), the netns' ListenDrops delta is %d", incQ, inc, ok, want)
	}
	covQ := fmt.Sprintf(`synq_reconcile_coverage_ratio{netns="%d",counter="ListenDrops"}`, ino)
	if v, ok := promQuery(t, base, covQ); !ok || v != 1 {
		t.Errorf("%s = %v (found %v), want 1: every drop of the pod's netns is its listener's", covQ, v, ok)
	}
	t.Logf("pod netns %d: kernel ListenDrops %d (delta %d), synq %d", ino, c["TcpExt.ListenDrops"], want, want)

	// The info series joins on the listener's labels and carries what the
	// cgroup says.
	joinQ := fmt.Sprintf(`sum(synq_listen_drops_total{%s} * on (instance, netns, addr, port) group_left (pod_uid, container_id, runtime, comm, pid, netns_name) `+
		`synq_listener_info{pod_uid=%q,container_id=%q,runtime="containerd",comm="sleep",pid="%d",netns_name=%q})`,
		lsel, pod.podUID, pod.ctr, pod.pid, name)
	if v, ok := promQuery(t, base, joinQ); !ok || v != float64(want) {
		t.Errorf("%s = %v (found %v), want %d", joinQ, v, ok, want)
	}
	nsQ := fmt.Sprintf(`synq_netns_info{netns="%d",netns_name=%q,namespace="shop",pod="web-0"}`, ino, name)
	if v, ok := promQuery(t, base, nsQ); !ok || v != 1 {
		t.Errorf("%s = %v (found %v), want 1", nsQ, v, ok)
	}
	// The kernel vs synq comparison of the dashboard, per namespace.
	cmpQ := fmt.Sprintf(`sum by (netns) (synq_listen_drops_total{netns="%d"}) - on (netns) synq_kernel_netstat_total{netns="%d",name="TcpExt_ListenDrops"}`, ino, ino)
	if v, ok := promQuery(t, base, cmpQ); !ok || v != -float64(c["TcpExt.ListenDrops"]-want) {
		t.Errorf("%s = %v (found %v), want %d (drops before synq started: none)", cmpQ, v, ok, -int64(c["TcpExt.ListenDrops"]-want))
	}
	if v, ok := promQuery(t, base, `synq_scrape_source_success{source="cri"}`); !ok || v != 1 {
		t.Errorf(`synq_scrape_source_success{source="cri"} = %v (found %v), want 1`, v, ok)
	}
	// The dashboard with the pod selected: every panel has its data.
	checkDashboardQueries(t, base, "namespace", "shop", "pod", "web-0", "netns", strconv.FormatUint(ino, 10))

	// Without a runtime (its socket absent): the cgroup still names the
	// container and pod UID, the names are empty, the cri source says why,
	// /healthz stays 200 and names it.
	bare := startServe(t, "--runtime-endpoint", filepath.Join(t.TempDir(), "absent.sock"), "--max-listeners", "10000")
	port := strconv.Itoa(int(pod.l.Port()))
	deadline := time.Now().Add(10 * time.Second)
	for {
		var drops, info, cri *sample
		ss := scrapeSamples(t, bare)
		for i := range ss {
			s := &ss[i]
			if s.labels["netns"] != strconv.FormatUint(ino, 10) || s.labels["port"] != port {
				if s.name == "synq_scrape_source_success" && s.labels["source"] == "cri" {
					cri = s
				}
				continue
			}
			switch s.name {
			case "synq_listen_drops_total":
				drops = s
			case "synq_listener_info":
				info = s
			}
		}
		if drops != nil && info != nil && cri != nil {
			if l := drops.labels; l["namespace"] != "" || l["pod"] != "" || l["container"] != "" {
				t.Errorf("without a runtime the drop series has names: %v", l)
			}
			if l := info.labels; l["pod_uid"] != pod.podUID || l["container_id"] != pod.ctr || l["runtime"] != "containerd" {
				t.Errorf("without a runtime synq_listener_info %v, want pod_uid %s, container_id %s from the cgroup", l, pod.podUID, pod.ctr)
			}
			if cri.value != 0 {
				t.Errorf("synq_scrape_source_success{source=cri} = %v without a runtime, want 0", cri.value)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no drop series, info or cri source for the pod's listener: %v %v %v", drops, info, cri)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if code, body := healthz(t, bare); code != 200 || !strings.Contains(body, "source cri failing") {
		t.Errorf("/healthz without the runtime: %d %q", code, body)
	}
}
