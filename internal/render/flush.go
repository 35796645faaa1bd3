package render

import (
	"bufio"
	"io"
	"sync"
	"time"
)

// FlushingWriter buffers output for few write(2)s in a storm, and writes out
// what it holds at most maxDelay after the first byte went in, whatever
// follows: a line written when nothing else happens reaches the reader (a
// pipe, a terminal, a file) anyway, and a process killed later has lost
// nothing it wrote maxDelay earlier. A bufio.Writer flushed only by the
// next write holds a quiet listener's last line back indefinitely.
//
// Safe for concurrent use. Writes allocate nothing: the timer is made
// once and re-armed.
type FlushingWriter struct {
	mu       sync.Mutex
	bw       *bufio.Writer
	maxDelay time.Duration
	timer    *time.Timer
	armed    bool // the timer will flush what is buffered
}

// NewFlushingWriter buffers up to size bytes for w.
func NewFlushingWriter(w io.Writer, size int, maxDelay time.Duration) *FlushingWriter {
	f := &FlushingWriter{bw: bufio.NewWriterSize(w, size), maxDelay: maxDelay}
	f.timer = time.AfterFunc(time.Hour, f.expire)
	f.timer.Stop()
	return f
}

// Write buffers p (writing out what the buffer cannot hold). The first
// error writing out is returned by every later Write and Flush.
func (f *FlushingWriter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.bw.Write(p)
	if f.bw.Buffered() > 0 && !f.armed {
		f.armed = true
		f.timer.Reset(f.maxDelay)
	}
	return n, err
}

// Flush writes out what is buffered now.
func (f *FlushingWriter) Flush() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.armed = false
	f.timer.Stop()
	return f.bw.Flush()
}

// expire runs on the timer's goroutine.
func (f *FlushingWriter) expire() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.armed {
		f.armed = false
		_ = f.bw.Flush() // kept by bufio: the next Write or Flush returns it
	}
}
