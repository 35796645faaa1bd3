package tracer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"github.com/cilium/ebpf/btf"
)

// ErrBTFFile is returned for a BTFPath that cannot be a BTF file: not a
// regular file (a device such as /dev/zero reads forever, a FIFO blocks
// forever), or of a size no BTF has.
var ErrBTFFile = errors.New("not a BTF file")

// Plausible BTF sizes: a raw BTF blob has a 24-byte header (struct
// btf_header); a kernel's is 3-10 MiB, an ELF vmlinux carrying .BTF (and
// DWARF) under 1 GiB. Anything larger is not read.
const (
	minBTFBytes = 24
	maxBTFBytes = 2 << 30
)

// CheckBTFFile says whether path can be a BTF file, from its metadata alone:
// ErrBTFFile (wrapped, with the reason) when it is not a regular file or
// its size is not plausible. Any other problem (it does not exist, it is
// unreadable) is left to loading, which reports it as ErrNoBTF.
func CheckBTFFile(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return nil
	}
	return checkBTFInfo(path, fi)
}

func checkBTFInfo(path string, fi fs.FileInfo) error {
	switch m := fi.Mode(); {
	case m.IsDir():
		return fmt.Errorf("%w: %s is a directory", ErrBTFFile, path)
	case m&fs.ModeNamedPipe != 0:
		return fmt.Errorf("%w: %s is a FIFO, not a regular file", ErrBTFFile, path)
	case m&fs.ModeDevice != 0:
		return fmt.Errorf("%w: %s is a device, not a regular file", ErrBTFFile, path)
	case !m.IsRegular():
		return fmt.Errorf("%w: %s is not a regular file (%s)", ErrBTFFile, path, m.Type())
	case fi.Size() < minBTFBytes || fi.Size() > maxBTFBytes:
		return fmt.Errorf("%w: %s has %d bytes, want %d to %d", ErrBTFFile, path, fi.Size(), minBTFBytes, int64(maxBTFBytes))
	}
	return nil
}

// loadBTFFile loads the BTF at path, refusing what CheckBTFFile refuses
// on the file it opened: a FIFO swapped in after a check opens without
// blocking (O_NONBLOCK) and is refused.
func loadBTFFile(path string) (*btf.Spec, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("%w at %s: %v", ErrNoBTF, path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%w at %s: %v", ErrNoBTF, path, err)
	}
	if err := checkBTFInfo(path, fi); err != nil {
		return nil, err
	}
	s, err := btf.LoadSpecFromReader(f)
	if err != nil {
		return nil, fmt.Errorf("%w at %s: %v", ErrNoBTF, path, err)
	}
	return s, nil
}
