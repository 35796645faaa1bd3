package command

import (
	"errors"
	"testing"
	"time"
)

// closeCounter is a loaded thing whose Close is observed.
type closeCounter chan struct{}

func (c closeCounter) Close() error { close(c); return nil }

// A load that does not watch for Ctrl-C (the verifier, parsing BTF) does
// not hold Ctrl-C up: whileLoading returns when interrupted is closed, and
// closes what the load returns later.
func TestWhileLoadingInterrupted(t *testing.T) {
	release := make(chan struct{})
	loaded := make(closeCounter)
	interrupt := make(chan struct{})
	res := make(chan error, 1)
	go func() {
		_, err := whileLoading(interrupt, func() (closeCounter, error) {
			<-release
			return loaded, nil
		})
		res <- err
	}()
	close(interrupt)
	select {
	case err := <-res:
		if !errors.Is(err, errInterrupted) {
			t.Fatalf("err %v, want errInterrupted", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("whileLoading did not return within 5s of the interrupt while the load went on")
	}
	close(release)
	select {
	case <-loaded:
	case <-time.After(5 * time.Second):
		t.Fatal("what the interrupted load returned was not closed")
	}
	// Not interrupted: the load's own result.
	v, err := whileLoading(nil, func() (closeCounter, error) { return nil, errors.New("verifier says no") })
	if v != nil || err == nil || err.Error() != "verifier says no" {
		t.Errorf("got %v, %v; want the load's error", v, err)
	}
}
