package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/synq-trace/synq/internal/kerneltest"
	"github.com/synq-trace/synq/internal/netlab"
)

func nginxBinary(t *testing.T) string {
	t.Helper()
	return debianBinary(t, "nginx", "nginx-light")
}

// startNginx runs nginx (one worker) in ns listening on 127.0.0.1:port
// with `listen ... backlog=N`, and returns its worker's pid.
func startNginx(t *testing.T, ns *netlab.Netns, port, backlog int) (worker int) {
	t.Helper()
	bin := nginxBinary(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "nginx.conf")
	err := os.WriteFile(conf, []byte(fmt.Sprintf(`worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 1024; }
http {
	access_log off;
	server { listen 127.0.0.1:%[2]d backlog=%[3]d; return 204; }
}
`, dir, port, backlog)), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", conf, "-g", "daemon off;")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	// Started from a thread inside ns: nginx's sockets are the netns's.
	if err := ns.Do(cmd.Start); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGQUIT)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid))
		if f := strings.Fields(string(b)); len(f) == 1 {
			var c net.Conn
			if ns.Do(func() (err error) { c, err = net.Dial("tcp4", fmt.Sprintf("127.0.0.1:%d", port)); return err }) == nil {
				c.Close()
				w, _ := strconv.Atoi(f[0])
				return w
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx did not come up: %s\n%s", logs.String(), b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Finding 1: a real nginx with `listen ... backlog=16` under the netns's
// somaxconn (4096 by default): its accept queue overflows while it
// accepts; raising somaxconn will not help, nginx's backlog= will.
func TestKernelDoctorNginxBacklog(t *testing.T) {
	kerneltest.Root(t)
	name, ns := doctorNetns(t, "synq-doc-nginx")
	const port, backlog = 8080, 16
	worker := startNginx(t, ns, port, backlog)
	som, err := ns.ReadSysctl("net.core.somaxconn")
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := strconv.Atoi(strings.TrimSpace(som)); v <= backlog {
		t.Skipf("somaxconn %s is not above the backlog %d", som, backlog)
	}
	res := doctorRun(t, ns, name, 4*time.Second, func() {
		// The worker stopped while the burst arrives: the queue fills
		// (backlog+1) and the rest overflows; resumed, it accepts them.
		if err := syscall.Kill(worker, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		waitState(t, worker, "T")
		dialAll(t, ns, fmt.Sprintf("127.0.0.1:%d", port), 4*backlog, func() {
			if err := syscall.Kill(worker, syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
			time.Sleep(300 * time.Millisecond)
		})
	}, "--port", strconv.Itoa(port))
	if res.code != exitFound {
		t.Errorf("exit %d, want %d", res.code, exitFound)
	}
	f := res.finding(t, "app-backlog", port)
	checkOverflowEvidence(t, res, f)
	if n, ok := synqOf(f, "connections accepted"); !ok || n == 0 {
		t.Errorf("nginx accepted %d (%v): the test's resumed worker must have", n, ok)
	}
	for _, want := range []string{fmt.Sprintf("listen(): %d, below net.core.somaxconn %s", backlog, strings.TrimSpace(som)), "raising somaxconn will not help"} {
		if !strings.Contains(f.Limit, want) {
			t.Errorf("limit %q does not say %q", f.Limit, want)
		}
	}
	for _, want := range []string{"nginx", fmt.Sprintf("listen %d backlog=%s;", port, strings.TrimSpace(som)), "listen directive"} {
		if !strings.Contains(f.Action, want) {
			t.Errorf("action %q does not say %q", f.Action, want)
		}
	}
}
