package main

import (
	"github.com/synq-trace/synq/tracer"
	"github.com/urfave/cli/v2"
)

// btfPath validates --btf before anything is loaded: a device, FIFO or
// directory, or a file of a size no BTF has, is bad input (exit 2). A path
// that does not exist is left to loading ("no kernel BTF", exit 1).
func btfPath(c *cli.Context) (string, error) {
	p := c.String("btf")
	if c.IsSet("btf") && p == "" {
		return "", usagef("invalid --btf \"\": want a BTF file")
	}
	if p == "" {
		return "", nil
	}
	if err := tracer.CheckBTFFile(p); err != nil {
		return "", usagef("invalid --btf: %v", err)
	}
	return p, nil
}
