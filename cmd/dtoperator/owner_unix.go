//go:build unix

package main

import (
	"io/fs"
	"os"
	"syscall"
)

// copyOwner gives f the owner and group of the file that info describes.
// Only root may do this for another owner.
func copyOwner(f *os.File, info fs.FileInfo) error {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	return f.Chown(int(st.Uid), int(st.Gid))
}
