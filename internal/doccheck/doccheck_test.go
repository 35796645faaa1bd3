package doccheck

import (
	"encoding/xml"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/synq-trace/synq/internal/netstat"
	"github.com/synq-trace/synq/tracer"
)

const root = "../.."

// The picture renders (rsvg-convert, Debian's librsvg2-bin, installed by
// make deps) to a PNG.
func TestJourneyPictureRenders(t *testing.T) {
	rsvg, err := exec.LookPath("rsvg-convert")
	if err != nil {
		t.Skip("rsvg-convert not installed (Debian librsvg2-bin: make deps)")
	}
	out := filepath.Join(t.TempDir(), "journey.png")
	if b, err := exec.Command(rsvg, "-o", out, filepath.Join(root, "docs/connection-journey.svg")).CombinedOutput(); err != nil || len(b) > 0 {
		t.Fatalf("rsvg-convert: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil || len(b) < 1000 || string(b[1:4]) != "PNG" {
		t.Fatalf("rsvg-convert wrote no PNG (%d bytes, %v)", len(b), err)
	}
}

// pictureNames returns the text of the picture's elements of class
// "counter" and "event".
func pictureNames(t *testing.T) (counters, events []string) {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "docs/connection-journey.svg"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := xml.NewDecoder(f)
	var class []string
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("docs/connection-journey.svg is not XML: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			c := ""
			for _, a := range tok.Attr {
				if a.Name.Local == "class" {
					c = a.Value
				}
			}
			class = append(class, c)
		case xml.EndElement:
			class = class[:len(class)-1]
		case xml.CharData:
			s := strings.TrimSpace(string(tok))
			if s == "" || len(class) == 0 {
				continue
			}
			switch class[len(class)-1] {
			case "counter":
				counters = append(counters, s)
			case "event":
				events = append(events, s)
			}
		}
	}
	return counters, events
}

// Every counter in the picture is one synq knows (internal/netstat), every
// event one synq emits (tracer kinds), and the picture has each of the
// listen path's counters and every event kind.
func TestJourneyPictureNames(t *testing.T) {
	counters, events := pictureNames(t)
	known := netstat.Known()
	for _, c := range counters {
		if !slices.Contains(known, "TcpExt."+c) && !slices.Contains(known, "Tcp."+c) {
			t.Errorf("the picture names counter %q: not a TcpExt or Tcp counter synq knows", c)
		}
	}
	var kinds []string
	for _, k := range tracer.AllKinds {
		kinds = append(kinds, k.String())
	}
	for _, e := range events {
		if !slices.Contains(kinds, e) {
			t.Errorf("the picture names event %q: synq's kinds are %v", e, kinds)
		}
	}
	for _, c := range []string{"ListenOverflows", "ListenDrops", "TCPReqQFullDrop", "TCPReqQFullDoCookies",
		"SyncookiesSent", "SyncookiesRecv", "TCPSynRetrans", "PassiveOpens"} {
		if !slices.Contains(counters, c) {
			t.Errorf("the picture lacks the counter %s", c)
		}
	}
	for _, k := range kinds {
		if !slices.Contains(events, k) {
			t.Errorf("the picture lacks the event %s", k)
		}
	}
}

var mdLink = regexp.MustCompile(`\]\(([^)#\s]+)(#[^)\s]*)?\)`)

// README.md shows the picture, and every relative link of README.md,
// DEVELOPERS.md and docs/*.md names a file that exists.
func TestDocLinks(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "](docs/connection-journey.svg)") {
		t.Error("README.md does not show docs/connection-journey.svg")
	}
	files, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	files = append(files, filepath.Join(root, "README.md"), filepath.Join(root, "DEVELOPERS.md"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range mdLink.FindAllStringSubmatch(string(b), -1) {
			if strings.Contains(m[1], "://") {
				continue
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(f), m[1])); err != nil {
				t.Errorf("%s links to %s: %v", f, m[1], err)
			}
		}
	}
}

// make demo installs only what the demo needs (nothing from apt: the BPF
// objects are committed and Go builds synq), make test the toolchain.
func TestMakeDemoAptSet(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	pkgs := func(v string) []string {
		cmd := exec.Command("make", "-s", "--no-print-directory", "print-"+v)
		cmd.Dir = root
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("make print-%s: %v", v, err)
		}
		return strings.Fields(string(out))
	}
	demo, test := pkgs("DEMO_PKGS"), pkgs("TEST_PKGS")
	for _, p := range demo {
		if p != "iproute2" {
			t.Errorf("make demo installs %s, which the demo does not need", p)
		}
	}
	for _, p := range []string{"clang", "llvm", "qemu-system-x86", "librsvg2-bin"} {
		if !slices.Contains(test, p) {
			t.Errorf("make test does not install %s", p)
		}
	}
	// The recipe make demo runs names the demo's set only.
	cmd := exec.Command("make", "-n", "--no-print-directory", "demo")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("make -n demo: %v", err)
	}
	for _, p := range test {
		if !slices.Contains(demo, p) && regexp.MustCompile(`\b`+regexp.QuoteMeta(p)+`\b`).Match(out) {
			t.Errorf("make demo's recipe names %s:\n%s", p, out)
		}
	}
}
