package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/synq-trace/synq/internal/kerneltest"
)

// `synq top` in a real terminal (tmux): the table is drawn in place (one
// header on the screen however many refreshes went by), `s` changes the
// sort, `q` quits with status 0 and leaves the terminal usable.
func TestKernelTopTmux(t *testing.T) {
	kerneltest.Root(t)
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		t.Fatal("tmux is not installed (make deps installs it)")
	}
	name := fmt.Sprintf("synq-tmux-%d", os.Getpid())
	ns := kerneltest.NamedNetns(t, name)
	l := kerneltest.Listen(t, ns, "tcp4", "127.0.0.1:0", 8)

	sock := fmt.Sprintf("synq-test-%d", os.Getpid()) // a tmux server of our own
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(tmux, append([]string{"-L", sock}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("tmux %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	shell := fmt.Sprintf("%s='top --netns %s --interval 200ms' %s; echo synq-exit=$?; sleep 60", kerneltest.MainArgsEnv, name, os.Args[0])
	run("new-session", "-d", "-s", "top", "-x", "200", "-y", "30", shell)
	defer exec.Command(tmux, "-L", sock, "kill-server").Run()

	screen := func() string { return run("capture-pane", "-p", "-t", "top") }
	waitFor := func(what string, ok func(string) bool) string {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			s := screen()
			if ok(s) {
				return s
			}
			if time.Now().After(deadline) {
				t.Fatalf("waiting for %s; the screen:\n%s", what, s)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	row := l.Addr().String()
	waitFor("the table", func(s string) bool { return strings.Contains(s, "synq top:") && strings.Contains(s, row) })
	// Several refreshes later: still one header and one row, in place.
	time.Sleep(time.Second)
	s := screen()
	if n := strings.Count(s, "synq top:"); n != 1 {
		t.Errorf("%d headers on the screen after 5+ refreshes, want 1 (redrawn in place):\n%s", n, s)
	}
	if n := strings.Count(s, row); n != 1 {
		t.Errorf("the listener %s is on the screen %d times, want 1:\n%s", row, n, s)
	}
	if !strings.Contains(s, "sorted by drops") {
		t.Errorf("default sort is not drops:\n%s", s)
	}
	run("send-keys", "-t", "top", "s")
	waitFor("the sort to change", func(s string) bool { return strings.Contains(s, "sorted by syn") })
	run("send-keys", "-t", "top", "q")
	s = waitFor("synq to quit", func(s string) bool { return strings.Contains(s, "synq-exit=") })
	if !strings.Contains(s, "synq-exit=0") {
		t.Errorf("q: synq did not exit 0:\n%s", s)
	}
	if strings.Contains(s, "synq top:") {
		t.Errorf("the table is still on the screen after quitting (alternate screen not left):\n%s", s)
	}
}
