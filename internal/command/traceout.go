package command

import (
	"io"
	"time"

	"github.com/synq-trace/synq/internal/render"
)

// traceFlushDelay bounds how long an event line waits in trace's buffer.
// Records reach the reader within its poll interval (100 ms, batched
// wakeups), so a line reaches stdout at most 200 ms after its event, however
// quiet the listener is afterwards.
const traceFlushDelay = 100 * time.Millisecond

// traceOutput buffers trace's stdout: 64 KiB is one write(2) per ~250 JSON
// lines in a storm, not per 16.
func traceOutput(w io.Writer) *render.FlushingWriter {
	return render.NewFlushingWriter(w, 64<<10, traceFlushDelay)
}
