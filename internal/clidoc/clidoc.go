// Package clidoc generates synq's documents from its urfave/cli command tree:
// the man page and shell completion scripts.
package clidoc

import (
	"regexp"

	"github.com/urfave/cli/v2"
)

var (
	fishLongAlias  = regexp.MustCompile(`-s ([a-zA-Z0-9][a-zA-Z0-9.-]+)`)
	manZeroDefault = regexp.MustCompile(` \(default: (0|0s|false)\)`)
)

// Fish is the fish completion script for app's command tree.
func Fish(app *cli.App) (string, error) {
	s, err := docApp(app).ToFishCompletion()
	if err != nil {
		return "", err
	}
	// urfave/cli gives a long alias (--listen) as a short option.
	return fishLongAlias.ReplaceAllString(s, "-l $1"), nil
}

// Man is the man page of app in roff, without meaningless zero defaults.
func Man(app *cli.App) (string, error) {
	s, err := docApp(app).ToMan()
	if err != nil {
		return "", err
	}
	return manZeroDefault.ReplaceAllString(s, ""), nil
}

// docApp is app for generated documents: its commands without urfave/cli's
// help command, which is one value shared by every command and, once run,
// lists itself among its own subcommands (a cycle the generators would
// follow forever).
func docApp(app *cli.App) *cli.App {
	var strip func([]*cli.Command) []*cli.Command
	strip = func(cmds []*cli.Command) []*cli.Command {
		var out []*cli.Command
		for _, c := range cmds {
			if c.Name == "help" {
				continue
			}
			cc := *c
			cc.Subcommands = strip(c.Subcommands)
			out = append(out, &cc)
		}
		return out
	}
	a := *app
	a.Commands = strip(app.Commands)
	return &a
}

// Bash is the bash completion script: it asks synq itself
// (--generate-bash-completion) for the commands and flags.
const Bash = `# bash completion for synq (synq completion bash)
_synq_complete() {
  local cur words
  COMPREPLY=()
  cur="${COMP_WORDS[COMP_CWORD]}"
  words=("${COMP_WORDS[@]:0:$COMP_CWORD}")
  local opts
  if [[ "$cur" == -* ]]; then
    opts=$("${words[@]}" "$cur" --generate-bash-completion 2>/dev/null)
  else
    opts=$("${words[@]}" --generate-bash-completion 2>/dev/null)
  fi
  COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}
complete -o bashdefault -o default -F _synq_complete synq
`

// Zsh is the zsh completion script, asking synq as Bash does.
const Zsh = `#compdef synq
# zsh completion for synq (synq completion zsh)
_synq() {
  local -a opts
  local cur=${words[-1]}
  if [[ "$cur" == -* ]]; then
    opts=("${(@f)$(${words[@]:0:#words[@]-1} ${cur} --generate-bash-completion 2>/dev/null)}")
  else
    opts=("${(@f)$(${words[@]:0:#words[@]-1} --generate-bash-completion 2>/dev/null)}")
  fi
  if [[ "${opts[1]}" != "" ]]; then
    _describe 'values' opts
  else
    _files
  fi
}
compdef _synq synq
`
