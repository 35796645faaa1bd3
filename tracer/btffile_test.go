package tracer

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// What cannot be a BTF file is refused from its metadata, at once: a device
// (/dev/zero read forever), a FIFO (open blocked forever), a directory, an
// empty file. The kernel's own BTF loads.
func TestLoadBTFFileRefuses(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/dev/zero", "/dev/urandom", fifo, dir, empty} {
		if err := CheckBTFFile(p); !errors.Is(err, ErrBTFFile) {
			t.Errorf("CheckBTFFile(%s) = %v, want ErrBTFFile", p, err)
		}
		// loadBTFFile checks the file it opened (a FIFO swapped in
		// after CheckBTFFile must not block the open).
		if _, err := loadBTFFile(p); !errors.Is(err, ErrBTFFile) {
			t.Errorf("loadBTFFile(%s) = %v, want ErrBTFFile", p, err)
		}
	}
	if err := CheckBTFFile(filepath.Join(dir, "missing")); err != nil {
		t.Errorf("CheckBTFFile(missing) = %v, want nil (left to loading: ErrNoBTF)", err)
	}
	if _, err := loadBTFFile(filepath.Join(dir, "missing")); !errors.Is(err, ErrNoBTF) {
		t.Errorf("loadBTFFile(missing) = %v, want ErrNoBTF", err)
	}
	const vmlinux = "/sys/kernel/btf/vmlinux"
	if _, err := os.Stat(vmlinux); err != nil {
		t.Skipf("no kernel BTF to load: %v", err)
	}
	if err := CheckBTFFile(vmlinux); err != nil {
		t.Errorf("CheckBTFFile(%s) = %v", vmlinux, err)
	}
	if _, err := loadBTFFile(vmlinux); err != nil {
		t.Errorf("loadBTFFile(%s) = %v", vmlinux, err)
	}
}
