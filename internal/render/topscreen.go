package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/synq-trace/synq/internal/aggregate"
	"golang.org/x/term"
)

// TopOutput writes frames: JSON lines, plain text tables one after the
// other, or a full-screen view redrawn in place when stdout is a terminal.
type TopOutput struct {
	w        io.Writer
	format   Format
	tty      *os.File // stdout, when it is a terminal and we redraw in place
	enc      *json.Encoder
	Redraw   chan struct{} // a key or a resized window asks for the last frame again
	frames   int
	interval time.Duration

	sortPresses atomic.Int32 // s pressed, not yet applied
	sorted      aggregate.SortKey
	restore     func()
}

// NewTopOutput writes top's frames to w, refreshed every interval; once
// (one frame, then exit) never takes over the terminal.
func NewTopOutput(w io.Writer, format Format, interval time.Duration, once bool) *TopOutput {
	o := &TopOutput{w: w, format: format, enc: json.NewEncoder(w), interval: interval,
		Redraw: make(chan struct{}, 1)}
	if f, ok := w.(*os.File); ok && format == Text && !once && term.IsTerminal(int(f.Fd())) {
		o.tty = f
	}
	return o
}

// Start enters the alternate screen and, when stdin is a terminal too, raw
// mode so that q and Ctrl-C (cancel) and s (next sort key) work unbuffered.
func (o *TopOutput) Start(cancel func()) error {
	if o.tty == nil {
		return nil
	}
	var restoreTerm func()
	if in := int(os.Stdin.Fd()); term.IsTerminal(in) {
		st, err := term.MakeRaw(in)
		if err != nil {
			return fmt.Errorf("terminal raw mode: %w", err)
		}
		restoreTerm = func() { _ = term.Restore(in, st) }
		go o.keys(cancel)
	}
	// Alternate screen, cursor hidden, cleared, and something to look at
	// until the first interval ends.
	io.WriteString(o.tty, "\x1b[?1049h\x1b[?25l\x1b[H\x1b[2Jsynq top: measuring the first interval ("+o.interval.String()+")…")
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-winch:
				o.poke()
			case <-done:
				return
			}
		}
	}()
	o.restore = func() {
		signal.Stop(winch)
		close(done)
		io.WriteString(o.tty, "\x1b[?25h\x1b[?1049l")
		if restoreTerm != nil {
			restoreTerm()
		}
	}
	return nil
}

// Stop leaves the alternate screen and raw mode.
func (o *TopOutput) Stop() {
	if o.restore != nil {
		o.restore()
	}
}

func (o *TopOutput) poke() {
	select {
	case o.Redraw <- struct{}{}:
	default:
	}
}

// keys reads stdin in raw mode. The goroutine ends with the process: a
// blocked read cannot be interrupted portably.
func (o *TopOutput) keys(cancel func()) {
	b := make([]byte, 16)
	for {
		n, err := os.Stdin.Read(b)
		if err != nil {
			return
		}
		for _, k := range b[:n] {
			switch k {
			case 'q', 'Q', 3, 4: // 3 = Ctrl-C, 4 = Ctrl-D: no signals in raw mode
				cancel()
				return
			case 's', 'S':
				o.sortPresses.Add(1)
				o.poke()
			}
		}
	}
}

// SortKey is the key in force: --sort, advanced once per s pressed.
func (o *TopOutput) SortKey(flag aggregate.SortKey) aggregate.SortKey {
	if o.sorted == "" {
		o.sorted = flag
	}
	for n := o.sortPresses.Swap(0); n > 0; n-- {
		o.sorted = o.sorted.Next()
	}
	return o.sorted
}

// Frame writes one refresh sorted by key.
func (o *TopOutput) Frame(f *aggregate.Frame, key aggregate.SortKey) error {
	o.frames++
	if o.format == JSON {
		return o.enc.Encode(NewTopFrameJSON(f, key))
	}
	lines := TopText(f, key, o.tty != nil)
	if o.tty == nil {
		if o.frames > 1 {
			lines = append([]string{""}, lines...)
		}
		_, err := io.WriteString(o.w, strings.Join(lines, "\n")+"\n")
		return err
	}
	width, height, err := term.GetSize(int(o.tty.Fd()))
	if err != nil || width <= 0 || height <= 0 {
		width, height = 200, 50
	}
	if len(lines) > height {
		more := len(lines) - height + 1
		lines = append(lines[:height-1], fmt.Sprintf("… %d more lines (a taller window, or --port/--netns)", more))
	}
	var b bytes.Buffer
	// Home, then each line cleared to its end, then the rest of the
	// screen: one write, no blank flash between frames.
	b.WriteString("\x1b[H")
	for i, l := range lines {
		if i > 0 {
			b.WriteString("\r\n")
		}
		b.WriteString(TopClip(l, width))
		b.WriteString("\x1b[K")
	}
	b.WriteString("\x1b[J")
	_, err = o.tty.Write(b.Bytes())
	return err
}

// TopClip cuts s to n columns (one per rune: synq prints no wide characters),
// so that no line wraps and scrolls the screen.
func TopClip(s string, n int) string {
	i := 0
	for j := range s {
		if i == n {
			return s[:j]
		}
		i++
	}
	return s
}
