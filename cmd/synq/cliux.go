package main

import (
	"fmt"
	"io"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/synq-trace/synq/internal/clidoc"
	"github.com/urfave/cli/v2"
)

// commit is set at build time with -ldflags "-X main.commit=..." (make build,
// the Dockerfile); without it, from the Go toolchain's build information.
var commit = ""

func init() {
	version, commit = resolveVersion(version, commit, debug.ReadBuildInfo)
}

// resolveVersion completes what -ldflags stamped from the build information
// the Go toolchain records: the module version of `go install
// .../cmd/synq@vX` (a pseudo-version naming the commit for @latest or a
// branch), and the VCS revision of a `go build` in a git checkout.
func resolveVersion(v, rev string, read func() (*debug.BuildInfo, bool)) (string, string) {
	bi, ok := read()
	if !ok {
		return v, rev
	}
	if v == "dev" || v == "" {
		if mv := bi.Main.Version; mv != "" && mv != "(devel)" {
			v = mv
		}
	}
	if rev == "" {
		var modified bool
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if rev != "" && modified {
			rev += "-dirty"
		}
	}
	if v == "" {
		v = "dev"
	}
	return v, rev
}

// printVersion is `synq --version`: version, commit and Go release.
func printVersion(c *cli.Context) {
	rev := commit
	if rev == "" {
		rev = "unknown"
	}
	fmt.Fprintf(c.App.Writer, "synq version %s\ncommit %s\n%s %s/%s\n", c.App.Version, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// polishApp finishes the command tree: `synq help`, shell completion (`synq
// completion SHELL`, from the tree itself), the man page (`synq man`), help
// text without "(default: ...)" doubles or meaningless zero defaults.
func polishApp(app *cli.App) {
	app.HideHelpCommand = false
	app.EnableBashCompletion = true
	app.Commands = append(app.Commands, completionCommand(), manCommand(), demoServerCommand())
	var walk func([]*cli.Command)
	walk = func(cmds []*cli.Command) {
		for _, c := range cmds {
			c.OnUsageError = app.OnUsageError
			for _, f := range c.Flags {
				moveDefault(f)
			}
			walk(c.Subcommands)
		}
	}
	walk(app.Commands)
}

var usageDefault = regexp.MustCompile(`\s*\(default:? ([^)]*)\)\s*$`)

// moveDefault turns a "(default: X)" written into a flag's usage into its
// DefaultText, so help says it once.
func moveDefault(f cli.Flag) {
	switch f := f.(type) {
	case *cli.DurationFlag:
		if m := usageDefault.FindStringSubmatch(f.Usage); m != nil {
			f.Usage, f.DefaultText = strings.TrimSuffix(f.Usage, m[0]), m[1]
		}
	case *cli.IntFlag:
		if m := usageDefault.FindStringSubmatch(f.Usage); m != nil {
			f.Usage, f.DefaultText = strings.TrimSuffix(f.Usage, m[0]), m[1]
		}
	case *cli.StringFlag:
		if m := usageDefault.FindStringSubmatch(f.Usage); m != nil {
			f.Usage, f.DefaultText = strings.TrimSuffix(f.Usage, m[0]), m[1]
		}
	}
}

func init() {
	// Help shows a default only where there is one: not "(default: 0)" for
	// an unset --port, "(default: 0s)" for an unset --duration or
	// "(default: false)" for a switch.
	orig := cli.FlagStringer
	cli.FlagStringer = func(f cli.Flag) string {
		s := orig(f)
		if d, ok := f.(cli.DocGenerationFlag); ok {
			switch d.GetDefaultText() {
			case "0", "0s", "false":
				if !hasDefaultText(f) {
					s = strings.Replace(s, " (default: "+d.GetDefaultText()+")", "", 1)
				}
			}
		}
		return s
	}
	cli.VersionPrinter = printVersion
}

func hasDefaultText(f cli.Flag) bool {
	switch f := f.(type) {
	case *cli.DurationFlag:
		return f.DefaultText != ""
	case *cli.IntFlag:
		return f.DefaultText != ""
	case *cli.BoolFlag:
		return f.DefaultText != ""
	}
	return false
}

// flagValueErr words the flag package's "invalid value "5" for flag
// -duration: parse error" as "--duration: want a duration like 10s, got "5"".
func flagValueErr(app *cli.App, err error) error {
	m := reInvalidValue.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	got, name, why := m[1], m[2], m[3]
	want := ""
	if why != "parse error" && why != "value out of range" {
		return fmt.Errorf("--%s: invalid value %q: %s", name, got, why)
	}
	switch unwrapFlag(findFlag(app, name)).(type) {
	case *cli.DurationFlag:
		want = "a duration like 10s"
	case *cli.IntFlag, *cli.Int64Flag:
		want = "an integer"
	case *cli.UintFlag, *cli.Uint64Flag:
		want = "a non-negative integer"
	case *cli.Float64Flag:
		want = "a number"
	case *cli.BoolFlag:
		want = "true or false"
	}
	if want == "" {
		return fmt.Errorf("--%s: invalid value %q: %s", name, got, why)
	}
	if why == "value out of range" {
		return fmt.Errorf("--%s: want %s, got %q (out of range)", name, want, got)
	}
	return fmt.Errorf("--%s: want %s, got %q", name, want, got)
}

var reInvalidValue = regexp.MustCompile(`^invalid value "(.*)" for flag -{1,2}([^:]+): (.*)$`)

// findFlag finds a flag by any of its names in the whole command tree.
func findFlag(app *cli.App, name string) cli.Flag {
	var in func([]cli.Flag, []*cli.Command) cli.Flag
	in = func(flags []cli.Flag, cmds []*cli.Command) cli.Flag {
		for _, f := range flags {
			for _, n := range f.Names() {
				if n == name {
					return f
				}
			}
		}
		for _, c := range cmds {
			if f := in(c.Flags, c.Subcommands); f != nil {
				return f
			}
		}
		return nil
	}
	return in(app.Flags, app.Commands)
}

// completionCommand prints a completion script. bash and zsh ask synq
// itself (--generate-bash-completion) for the commands and flags, so they
// follow the binary; fish's script is generated from the command tree.
func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print the shell completion script for bash, zsh or fish",
		ArgsUsage: "bash|zsh|fish",
		Description: "bash: synq completion bash > /etc/bash_completion.d/synq (or source <(synq completion bash))\n" +
			"zsh:  synq completion zsh > \"${fpath[1]}/_synq\"\n" +
			"fish: synq completion fish > ~/.config/fish/completions/synq.fish\n" +
			"make install installs all three.",
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("completion takes one argument: bash, zsh or fish")
			}
			return writeCompletion(c.App, c.Args().First(), c.App.Writer)
		},
	}
}

func writeCompletion(app *cli.App, shell string, w io.Writer) error {
	switch shell {
	case "bash":
		_, err := io.WriteString(w, clidoc.Bash)
		return err
	case "zsh":
		_, err := io.WriteString(w, clidoc.Zsh)
		return err
	case "fish":
		s, err := clidoc.Fish(app)
		if err != nil {
			return err
		}
		_, err = io.WriteString(w, s)
		return err
	}
	return usagef("unknown shell %q: want bash, zsh or fish", shell)
}

// manCommand prints synq(1), generated from the command tree.
func manCommand() *cli.Command {
	return &cli.Command{
		Name:   "man",
		Usage:  "print the man page synq(1) in roff",
		Hidden: true,
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("man takes no arguments, got %q", c.Args().First())
			}
			s, err := clidoc.Man(c.App)
			if err != nil {
				return err
			}
			_, err = io.WriteString(c.App.Writer, s)
			return err
		},
	}
}
