package render

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// writeTable pads columns to their widest cell, two spaces apart; a last
// column aligned left is not padded.
func writeTable(b *strings.Builder, rows [][]string, right []bool) {
	width := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, cell := range r {
			width[i] = max(width[i], len(cell))
		}
	}
	for _, r := range rows {
		for i, cell := range r {
			pad := strings.Repeat(" ", width[i]-len(cell))
			if i > 0 {
				b.WriteString("  ")
			}
			switch {
			case right[i]:
				b.WriteString(pad + cell)
			case i == len(r)-1:
				b.WriteString(cell)
			default:
				b.WriteString(cell + pad)
			}
		}
		b.WriteString("\n")
	}
}

// netnsCell names a namespace in a table: "inode (name)", or "inode".
func netnsCell(inode uint64, name string) string {
	s := strconv.FormatUint(inode, 10)
	if name != "" {
		s += " (" + name + ")"
	}
	return s
}

// netnsHead names a namespace in a heading: "name (net:[inode])", or
// "net:[inode]".
func netnsHead(inode uint64, name string) string {
	s := fmt.Sprintf("net:[%d]", inode)
	if name != "" {
		s = name + " (" + s + ")"
	}
	return s
}

// ownerCell is "pid/comm", with " +N" when N more processes hold the socket.
func ownerCell(pid int, comm string, more int) string {
	s := fmt.Sprintf("%d/%s", pid, comm)
	if more > 0 {
		s += fmt.Sprintf(" +%d", more)
	}
	return s
}

// writeJSONLine writes v as one line of JSON, in one write.
func writeJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
