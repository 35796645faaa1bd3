package validate

import (
	"bufio"
	"debug/elf"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

const dockerfile = "../Dockerfile"

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct{ cmd, args string }

func readDockerfile(t *testing.T) []instruction {
	t.Helper()
	b, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	var out []instruction
	var cur string
	for _, line := range strings.Split(string(b), "\n") {
		if t := strings.TrimSpace(line); cur == "" && (t == "" || strings.HasPrefix(t, "#")) {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur += strings.TrimSuffix(line, "\\") + " "
			continue
		}
		cur += line
		cmd, args, _ := strings.Cut(strings.TrimSpace(cur), " ")
		out = append(out, instruction{strings.ToUpper(cmd), strings.TrimSpace(args)})
		cur = ""
	}
	return out
}

// The Dockerfile is multi-stage: a Go build stage, then the static binary
// alone on a distroless static base, run as synq serve.
func TestDockerfileShape(t *testing.T) {
	ins := readDockerfile(t)
	var froms []string
	var build, copyFrom, entry, user bool
	args := map[string]string{}
	for _, in := range ins {
		switch in.cmd {
		case "FROM":
			froms = append(froms, in.args)
		case "ARG":
			if k, v, ok := strings.Cut(in.args, "="); ok {
				args[k] = v
			}
		case "RUN":
			if strings.Contains(in.args, "go build") {
				build = true
				if !strings.Contains(in.args, "CGO_ENABLED=0") {
					t.Errorf("go build without CGO_ENABLED=0: the binary would need a libc: %s", in.args)
				}
			}
		case "COPY":
			copyFrom = copyFrom || (len(froms) > 1 && strings.HasPrefix(in.args, "--from="))
		case "ENTRYPOINT":
			entry = strings.Contains(in.args, "/usr/local/bin/synq")
		case "USER":
			user = true
		}
	}
	if len(froms) < 2 {
		t.Fatalf("%d stages (FROM %v), want a build stage and a runtime stage", len(froms), froms)
	}
	if last := froms[len(froms)-1]; !strings.HasPrefix(last, "gcr.io/distroless/static") {
		t.Errorf("runtime stage FROM %s, want gcr.io/distroless/static (no libc, no shell)", last)
	}
	if !build || !copyFrom || !entry || !user {
		t.Errorf("go build %v, COPY --from into the runtime stage %v, ENTRYPOINT synq %v, USER %v: want all", build, copyFrom, entry, user)
	}
	// The build image's Go must be at least what go.mod asks for.
	gomod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(gomod)
	if m == nil {
		t.Fatal("no go directive in go.mod")
	}
	if got := args["GO_VERSION"]; versionLess(got, string(m[1])) {
		t.Errorf("Dockerfile GO_VERSION %q is older than go.mod's go %s", got, m[1])
	}
}

func versionLess(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < max(len(pa), len(pb)); i++ {
		var x, y int
		if i < len(pa) {
			x = atoi(pa[i])
		}
		if i < len(pb) {
			y = atoi(pb[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}

func atoi(s string) (n int) {
	for _, c := range s {
		if c < '0' || c > '9' {
			return n
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// The image's build without a container engine (none is needed to check
// it, and registries may be out of reach): the build context the
// .dockerignore next to the Dockerfile leaves, built with the Dockerfile's
// own go build line, is a static binary that runs.
func TestDockerfileBuildsStaticBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds synq")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	ctxDir := buildContext(t, root)
	if _, err := os.Stat(filepath.Join(ctxDir, "deploy")); err == nil {
		t.Errorf("the build context has deploy/: the ignore file is not applied")
	}
	var run string
	for _, in := range readDockerfile(t) {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			run = in.args
		}
	}
	// The RUN line without its cache mounts, with the ARG it uses; the
	// shell expands ${TARGETOS} and ${TARGETARCH}, as in the image build
	// for each --platform.
	cmdline := regexp.MustCompile(`--mount=\S+\s*`).ReplaceAllString(run, "")
	cmdline = strings.ReplaceAll(cmdline, "${VERSION}", "dockerfile-test")
	if !strings.Contains(cmdline, "GOARCH=${TARGETARCH}") {
		t.Errorf("go build does not take GOARCH from TARGETARCH (--platform): %s", run)
	}
	for arch, machine := range map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64} {
		out := filepath.Join(t.TempDir(), "out")
		cmdline := strings.ReplaceAll(cmdline, "/out/synq", filepath.Join(out, "synq"))
		sh := exec.Command("sh", "-c", cmdline)
		sh.Dir = ctxDir
		sh.Env = append(os.Environ(), "GOWORK=off", "TARGETOS=linux", "TARGETARCH="+arch)
		if b, err := sh.CombinedOutput(); err != nil {
			t.Fatalf("TARGETARCH=%s %s: %v\n%s", arch, cmdline, err, b)
		}
		bin := filepath.Join(out, "synq")
		checkStatic(t, bin, machine)
		if arch != runtime.GOARCH {
			continue
		}
		if b, err := exec.Command(bin, "--version").CombinedOutput(); err != nil || !strings.Contains(string(b), "dockerfile-test") {
			t.Errorf("synq --version: %v %q, want the VERSION build argument", err, b)
		}
	}
}

// checkStatic: bin is a static ELF executable for machine.
func checkStatic(t *testing.T, bin string, machine elf.Machine) {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Machine != machine {
		t.Errorf("%s is for %v, want %v", bin, f.Machine, machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s has a program interpreter: not static", bin)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("%s needs shared libraries %v: not static", bin, libs)
	}
}

// buildContext copies the files of root that deploy/Dockerfile.dockerignore
// lets into the build context (the working tree's files, matched as
// BuildKit matches them).
func buildContext(t *testing.T, root string) string {
	t.Helper()
	f, err := os.Open(dockerfile + ".dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(bufio.NewReader(f))
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		skip, err := pm.MatchesOrParentMatches(filepath.ToSlash(rel))
		if err != nil {
			return err
		}
		if skip {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}
