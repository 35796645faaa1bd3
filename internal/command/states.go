package command

import (
	"errors"
	"fmt"
	"time"

	"github.com/synq-trace/synq/internal/netns"
	"github.com/synq-trace/synq/internal/render"
	"github.com/synq-trace/synq/internal/sockstate"
)

// StatesOptions are states' flags, checked.
type StatesOptions struct {
	Format render.Format
	NS     []netns.NS // the namespaces to count
	By     string     // --by: state or port
}

// States counts TCP sockets by state (and port) in each namespace.
func States(env Env, o StatesOptions) error {
	all, by, format := o.NS, o.By, o.Format
	var failed []error
	for i, ns := range all {
		counts, err := sockstate.Count(ns)
		if err != nil {
			if len(all) == 1 {
				return err
			}
			// A namespace can vanish between listing and counting.
			fmt.Fprintf(env.Stderr, "synq: %v\n", err)
			failed = append(failed, err)
			continue
		}
		r := render.NewStatesReport(ns, time.Now(), counts, by == "port")
		if err := render.WriteStates(env.Stdout, format, r, by, i > 0); err != nil {
			return err
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d network namespaces could not be counted: %w", len(failed), len(all), errors.Join(failed...))
	}
	return nil
}
