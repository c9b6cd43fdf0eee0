package main

import (
	"os"
	"path/filepath"
)

// writeFileAtomic writes data to a temporary file next to name with the
// given mode and renames it over name (replaceFile).
func writeFileAtomic(name string, data []byte, mode os.FileMode) error {
	return replaceFile(name, data, func(f *os.File) error { return f.Chmod(mode) })
}

// replaceFile writes data to a temporary file in name's folder, lets
// prepare set its mode and owner, syncs it to disk and renames it over
// name, so that readers see the old file or the complete new one and never
// a part. It then syncs the folder, so that the rename survives a crash;
// a failure of that last step is ignored, since name already holds data.
// On error the temporary file is removed and name is unchanged.
func replaceFile(name string, data []byte, prepare func(*os.File) error) (err error) {
	dir := filepath.Dir(name)
	f, err := os.CreateTemp(dir, "."+filepath.Base(name)+".*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := prepare(f); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), name); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
