package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// visible lists synq's commands as the user sees them.
func visible(app *cli.App) []*cli.Command {
	var out []*cli.Command
	for _, c := range app.Commands {
		if !c.Hidden && c.Name != "help" {
			out = append(out, c)
		}
	}
	return out
}

// Every value error names the flag and the expected form, one line, exit 2:
// every numeric and duration flag of every command, from the command tree.
func TestFlagValueErrorsNameTheFlag(t *testing.T) {
	code, _, stderr := runCLI("trace", "--duration", "5")
	if want := "synq: --duration: want a duration like 10s, got \"5\"\n"; code != 2 || stderr != want {
		t.Errorf("trace --duration 5: exit %d, %q; want 2, %q", code, stderr, want)
	}
	n := 0
	for _, cmd := range visible(newApp()) {
		for _, f := range cmd.Flags {
			var want string
			switch unwrapFlag(f).(type) {
			case *cli.DurationFlag:
				want = "want a duration like 10s, got \"bogus\""
			case *cli.IntFlag:
				want = "want an integer, got \"bogus\""
			default:
				continue
			}
			name := f.Names()[0]
			code, _, stderr := runCLI(cmd.Name, "--"+name, "bogus")
			line := "synq: --" + name + ": " + want + "\n"
			if code != 2 || stderr != line {
				t.Errorf("synq %s --%s bogus: exit %d, %q; want 2, %q", cmd.Name, name, code, stderr, line)
			}
			n++
		}
	}
	if n < 10 {
		t.Errorf("only %d numeric or duration flags checked", n)
	}
}

// Help shows each default once, and none for a flag whose zero means
// "not set" (--port, --duration, switches).
func TestHelpDefaults(t *testing.T) {
	for _, cmd := range visible(newApp()) {
		code, out, stderr := runCLI(cmd.Name, "--help")
		if code != 0 {
			t.Fatalf("synq %s --help: exit %d %s", cmd.Name, code, stderr)
		}
		for _, line := range strings.Split(out, "\n") {
			if strings.Count(line, "(default:") > 1 {
				t.Errorf("synq %s --help: two defaults: %q", cmd.Name, line)
			}
			for _, z := range []string{"(default: 0)", "(default: 0s)", "(default: false)"} {
				if strings.Contains(line, z) {
					t.Errorf("synq %s --help: %q", cmd.Name, line)
				}
			}
		}
	}
	_, out, _ := runCLI("trace", "--help")
	if !strings.Contains(out, "(default: until Ctrl-C)") {
		t.Errorf("trace --help lost --duration's default:\n%s", out)
	}
}

func TestHelpCommand(t *testing.T) {
	code, out, stderr := runCLI("help")
	if code != 0 || !strings.Contains(out, "serve") || !strings.Contains(out, "completion") {
		t.Errorf("synq help: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	code, out, _ = runCLI("help", "serve")
	if code != 0 || !strings.Contains(out, "--web.listen-address") {
		t.Errorf("synq help serve: exit %d\n%s", code, out)
	}
}

// The man page and the completion scripts come from the command tree: every
// command and every flag of each is in them, and bash/zsh ask the binary.
func TestManAndCompletionFromTree(t *testing.T) {
	code, man, stderr := runCLI("man")
	if code != 0 || !strings.HasPrefix(man, ".nh\n.TH synq 8") {
		t.Fatalf("synq man: exit %d %s\n%.200s", code, stderr, man)
	}
	code, fish, stderr := runCLI("completion", "fish")
	if code != 0 {
		t.Fatalf("synq completion fish: exit %d %s", code, stderr)
	}
	for _, cmd := range visible(newApp()) {
		if !strings.Contains(man, "\n.SH "+cmd.Name+"\n") && !strings.Contains(man, "\n# "+cmd.Name+"\n") {
			t.Errorf("man page has no section for %s", cmd.Name)
		}
		if !strings.Contains(fish, "-a '"+cmd.Name+"'") {
			t.Errorf("fish completion lacks the command %s", cmd.Name)
		}
		for _, f := range cmd.Flags {
			if v, ok := unwrapFlag(f).(cli.VisibleFlag); ok && !v.IsVisible() {
				continue // a hidden former name (stats --all) is in neither
			}
			for _, name := range f.Names() {
				if len(name) > 1 && !strings.Contains(fish, "__fish_seen_subcommand_from "+cmd.Name+"' -f -l "+name) &&
					!strings.Contains(fish, "-l "+name) {
					t.Errorf("fish completion lacks %s --%s", cmd.Name, name)
				}
				if len(name) > 1 && !regexp.MustCompile(`\\fB[^\\]*--`+regexp.QuoteMeta(name)+`[,\\]`).MatchString(man) {
					t.Errorf("man page lacks %s --%s", cmd.Name, name)
				}
			}
		}
	}
	if strings.Contains(man, "(default: 0)") {
		t.Errorf("man page has a zero default")
	}
	for _, sh := range []string{"bash", "zsh"} {
		code, out, _ := runCLI("completion", sh)
		if code != 0 || !strings.Contains(out, "--generate-bash-completion") {
			t.Errorf("synq completion %s: exit %d\n%s", sh, code, out)
		}
	}
	if code, _, stderr := runCLI("completion", "tcsh"); code != 2 || !strings.Contains(stderr, `unknown shell "tcsh"`) {
		t.Errorf("completion tcsh: exit %d %q", code, stderr)
	}
	// What bash and zsh get: the commands (urfave/cli reads os.Args).
	saved := os.Args
	defer func() { os.Args = saved }()
	os.Args = []string{"synq", "--generate-bash-completion"}
	_, out, _ := runCLI("--generate-bash-completion")
	for _, cmd := range visible(newApp()) {
		if !slices.Contains(strings.Fields(out), cmd.Name) {
			t.Errorf("synq --generate-bash-completion lacks %s:\n%s", cmd.Name, out)
		}
	}
}

func TestResolveVersion(t *testing.T) {
	info := func(mv string, settings ...debug.BuildSetting) func() (*debug.BuildInfo, bool) {
		return func() (*debug.BuildInfo, bool) {
			return &debug.BuildInfo{Main: debug.Module{Version: mv}, Settings: settings}, true
		}
	}
	rev := debug.BuildSetting{Key: "vcs.revision", Value: "0123abc"}
	dirty := debug.BuildSetting{Key: "vcs.modified", Value: "true"}
	for _, c := range []struct {
		v, c      string
		read      func() (*debug.BuildInfo, bool)
		wantV, wc string
	}{
		{"v1.2.3", "feed", info("v0.0.0-x", rev), "v1.2.3", "feed"},                             // make build: ldflags win
		{"dev", "", info("v1.4.0"), "v1.4.0", ""},                                               // go install ...@v1.4.0
		{"dev", "", info("(devel)", rev, dirty), "dev", "0123abc-dirty"},                        // go build, -buildvcs
		{"dev", "", info("v0.0.0-20261202-0123abc", rev), "v0.0.0-20261202-0123abc", "0123abc"}, // go install @latest
		{"dev", "", func() (*debug.BuildInfo, bool) { return nil, false }, "dev", ""},
	} {
		v, r := resolveVersion(c.v, c.c, c.read)
		if v != c.wantV || r != c.wc {
			t.Errorf("resolveVersion(%q, %q) = %q, %q; want %q, %q", c.v, c.c, v, r, c.wantV, c.wc)
		}
	}
}

// From a clean clone of this commit: make build stamps version and commit;
// a plain go build (what go install does) gets the commit from the
// toolchain; make install puts the binary, completion and man page in place,
// and bash completes synq's commands and flags with them.
func TestCleanCloneBuildAndInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds synq twice from a clone")
	}
	for _, tool := range []string{"git", "make", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s", tool)
		}
	}
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("not in a git checkout: %v", err)
	}
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	sha := strings.TrimSpace(string(head))
	dir := filepath.Join(t.TempDir(), "synq")
	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return string(out)
	}
	if out, err := exec.Command("git", "clone", "-q", "--no-checkout", strings.TrimSpace(string(top)), dir).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	run("git", "-c", "advice.detachedHead=false", "checkout", "-q", sha)

	root := filepath.Join(t.TempDir(), "root")
	run("make", "--no-print-directory", "install", "DESTDIR="+root, "PREFIX=/usr")
	bin := filepath.Join(root, "usr", "bin", "synq")
	out := run(bin, "--version")
	if !strings.Contains(out, "synq version "+sha[:7]) || !strings.Contains(out, "commit "+sha+"\n") {
		t.Errorf("make build: synq --version = %q, want version and commit %s", out, sha)
	}
	for _, f := range []string{"share/bash-completion/completions/synq", "share/zsh/site-functions/_synq",
		"share/fish/vendor_completions.d/synq.fish", "share/man/man8/synq.8"} {
		if st, err := os.Stat(filepath.Join(root, "usr", f)); err != nil || st.Size() == 0 {
			t.Errorf("make install: %s: %v", f, err)
		}
	}
	// bash, with the installed script and binary.
	complete := func(words ...string) []string {
		script := `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _synq_complete; printf '%s\n' "${COMPREPLY[@]}"`
		cmd := exec.Command("bash", append([]string{"-c", script, "bash", filepath.Join(root, "usr/share/bash-completion/completions/synq")}, words...)...)
		cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(bin)+":"+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("bash completion of %v: %v\n%s", words, err, out)
		}
		return strings.Fields(string(out))
	}
	if got := complete("synq", "se"); !slices.Equal(got, []string{"serve"}) {
		t.Errorf("bash completes \"synq se\" to %v, want [serve]", got)
	}
	if got := complete("synq", "serve", "--web."); !slices.Contains(got, "--web.listen-address") || !slices.Contains(got, "--web.config.file") {
		t.Errorf("bash completes \"synq serve --web.\" to %v", got)
	}

	// go build without make: no ldflags, the toolchain stamps the commit.
	run("go", "build", "-buildvcs=true", "-o", "plain", "./cmd/synq")
	if out := run("./plain", "--version"); !strings.Contains(out, "commit "+sha+"\n") {
		t.Errorf("go build: synq --version = %q, want commit %s", out, sha)
	}
}

// The Dockerfile (no .git in its context) stamps both from build arguments.
func TestDockerfileStampsVersion(t *testing.T) {
	b, err := os.ReadFile("../../deploy/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ARG VERSION", "ARG COMMIT", "-X main.version=${VERSION}", "-X main.commit=${COMMIT}"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("deploy/Dockerfile lacks %s", want)
		}
	}
}
