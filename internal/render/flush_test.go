package render

import (
	"bufio"
	"os"
	"testing"
	"time"
)

// A line written once, with nothing after it, reaches the reader of a pipe
// on its own (at most maxDelay later; the deadline is generous for a busy
// machine), and so does the next one; a plain bufio.Writer would hold both
// until 64 KiB more came.
func TestFlushingWriterWritesOutUnprompted(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	f := NewFlushingWriter(w, 64<<10, 100*time.Millisecond)
	lines := bufio.NewReader(r)
	for _, want := range []string{"first line\n", "second line\n"} {
		if _, err := f.Write([]byte(want)); err != nil {
			t.Fatal(err)
		}
		if err := r.SetReadDeadline(time.Now().Add(3 * time.Second)); err != nil {
			t.Fatal(err)
		}
		got, err := lines.ReadString('\n')
		if err != nil || got != want {
			t.Fatalf("read %q, %v; want %q within 3s of writing it, with nothing written after", got, err, want)
		}
	}
	if err := f.Flush(); err != nil {
		t.Fatal(err)
	}
}

// A failed write out is returned by the next Write, not dropped by the
// timer that hit it.
func TestFlushingWriterKeepsError(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	defer w.Close()
	f := NewFlushingWriter(w, 64<<10, time.Millisecond)
	if _, err := f.Write([]byte("to nobody\n")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := f.Write([]byte("x")); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no error from Write 5s after the reader closed the pipe")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := f.Flush(); err == nil {
		t.Error("Flush returned no error after a failed write out")
	}
}
