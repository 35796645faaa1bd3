package doctor

import (
	"bytes"
	"debug/buildinfo"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ReadProc reads what the findings need of process pid under procDir
// (/proc); nil when the process is gone.
func ReadProc(procDir string, pid int) *Proc {
	dir := filepath.Join(procDir, strconv.Itoa(pid))
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return nil
	}
	p := &Proc{PID: pid}
	// "pid (comm) S ...": comm may hold spaces and parentheses.
	open, end := bytes.IndexByte(stat, '('), bytes.LastIndexByte(stat, ')')
	if open < 0 || end < open {
		return nil
	}
	p.Comm = string(stat[open+1 : end])
	if f := strings.Fields(string(stat[end+1:])); len(f) > 0 {
		p.State = f[0]
	}
	if b, err := os.ReadFile(filepath.Join(dir, "wchan")); err == nil && string(b) != "0" {
		p.Wchan = string(b)
	}
	p.Exe, _ = os.Readlink(filepath.Join(dir, "exe"))
	if b, err := os.ReadFile(filepath.Join(dir, "cmdline")); err == nil {
		for a := range bytes.SplitSeq(bytes.TrimRight(b, "\x00"), []byte{0}) {
			p.Cmdline = append(p.Cmdline, string(a))
		}
	}
	if _, err := buildinfo.ReadFile(filepath.Join(dir, "exe")); err == nil {
		p.Go = true
	}
	return p
}
