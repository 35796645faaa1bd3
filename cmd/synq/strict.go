package main

import (
	"errors"
	"flag"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
)

// strictFlags makes bad input of a kind flag parsing lets through an error:
// a flag that takes one value given twice (`--port 1 --port 2` kept the
// last), and a string flag given an empty value (`--netns ""` traced every
// namespace, `--tier ""` and `--events ""` meant the defaults). Leaving the
// flag out is how to ask for its default.
func strictFlags(flags []cli.Flag) []cli.Flag {
	out := make([]cli.Flag, len(flags))
	for i, f := range flags {
		switch f := f.(type) {
		case *cli.StringFlag:
			out[i] = strictString{f}
		case *cli.IntFlag:
			out[i] = strictInt{f}
		case *cli.DurationFlag:
			out[i] = strictDuration{f}
		default:
			out[i] = f
		}
	}
	return out
}

// unwrapFlag is the urfave/cli flag inside a strict wrapper (f itself
// otherwise).
func unwrapFlag(f cli.Flag) cli.Flag {
	switch s := f.(type) {
	case strictString:
		return s.StringFlag
	case strictInt:
		return s.IntFlag
	case strictDuration:
		return s.DurationFlag
	}
	return f
}

type strictString struct{ *cli.StringFlag }

func (f strictString) Apply(set *flag.FlagSet) error {
	if err := f.StringFlag.Apply(set); err != nil {
		return err
	}
	guardValues(set, f.Names(), true)
	return nil
}

type strictInt struct{ *cli.IntFlag }

func (f strictInt) Apply(set *flag.FlagSet) error {
	if err := f.IntFlag.Apply(set); err != nil {
		return err
	}
	guardValues(set, f.Names(), false)
	return nil
}

type strictDuration struct{ *cli.DurationFlag }

func (f strictDuration) Apply(set *flag.FlagSet) error {
	if err := f.DurationFlag.Apply(set); err != nil {
		return err
	}
	guardValues(set, f.Names(), false)
	return nil
}

// guardValues wraps the parsed values of a flag's names (each alias has its
// own; urfave/cli refuses two forms of one flag itself).
func guardValues(set *flag.FlagSet, names []string, nonEmpty bool) {
	for _, n := range names {
		if fl := set.Lookup(n); fl != nil {
			fl.Value = &strictValue{Value: fl.Value, nonEmpty: nonEmpty}
		}
	}
}

// strictValue is a flag value that may be set once, and not to "" when
// nonEmpty. flag.FlagSet words its errors: `invalid value "2" for flag
// -port: given twice (it takes one value)`.
type strictValue struct {
	flag.Value
	nonEmpty bool
	set      bool
}

var (
	errGivenTwice = errors.New("given twice (it takes one value)")
	errEmpty      = errors.New("empty (leave the flag out for its default)")
)

func (v *strictValue) Set(s string) error {
	if v.set {
		return errGivenTwice
	}
	if v.nonEmpty && strings.TrimSpace(s) == "" {
		return errEmpty
	}
	v.set = true
	return v.Value.Set(s)
}

// Get keeps the value a flag.Getter, which urfave/cli's Context.Value uses.
func (v *strictValue) Get() any {
	if g, ok := v.Value.(flag.Getter); ok {
		return g.Get()
	}
	return v.Value.String()
}

// minInterval is the shortest refresh of `stats --interval` and `top
// --interval`: each one reads the kernel's counters (and top every
// listener) and prints a report; `stats --interval 1ns` printed 351k lines
// in 5 s.
const minInterval = 100 * time.Millisecond
