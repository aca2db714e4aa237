// Package readfile owns how the engine reads a file it was pointed at
// (definitions, connection files, ${file:} references): only regular files,
// and never more than a limit a real file of that kind stays far below, so
// that /dev/zero, a FIFO or a huge file fails with an error naming the limit
// instead of exhausting memory or blocking.
package readfile

import (
	"fmt"
	"io"
	"io/fs"
	"os"
)

// Common limits.
const (
	KiB = 1 << 10
	MiB = 1 << 20
)

// Read returns the content of the regular file at path (symbolic links
// followed), or an error when it is not a regular file or holds more than
// limit bytes. what names the kind of file for the error, as in "a
// definition file".
func Read(path string, limit int64, what string) ([]byte, error) {
	// Stat before opening: opening a FIFO blocks until a writer comes.
	st, err := os.Stat(path)
	if pe, ok := err.(*fs.PathError); ok {
		pe.Op = "open" // as os.ReadFile says: the caller asked to read it
	}
	if err != nil {
		return nil, err
	}
	if err := check(st, limit, what); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readOpen(f, limit, what)
}

// ReadFS is Read for a file of fsys.
func ReadFS(fsys fs.FS, name string, limit int64, what string) ([]byte, error) {
	st, err := fs.Stat(fsys, name)
	if err != nil {
		return nil, err
	}
	if err := check(st, limit, what); err != nil {
		return nil, err
	}
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readOpen(f, limit, what)
}

// readOpen checks the file actually opened (the path may name another by
// now) and reads at most limit bytes of it, however its size changes.
func readOpen(f fs.File, limit int64, what string) ([]byte, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if err := check(st, limit, what); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, tooLarge(limit, what)
	}
	return data, nil
}

func check(st fs.FileInfo, limit int64, what string) error {
	if !st.Mode().IsRegular() {
		return fmt.Errorf("it is %s, not a regular file; %s must be a regular file", kind(st.Mode()), what)
	}
	if st.Size() > limit {
		return tooLarge(limit, what)
	}
	return nil
}

func tooLarge(limit int64, what string) error {
	return fmt.Errorf("it is larger than %s, the limit for %s; no real one is that large, so check that this is the file you meant", Size(limit), what)
}

func kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	}
	return "a special file"
}

// Size writes a byte count as people read limits: 4 MiB, 64 KiB, 100 bytes.
func Size(n int64) string {
	switch {
	case n >= MiB && n%MiB == 0:
		return fmt.Sprintf("%d MiB", n/MiB)
	case n >= KiB && n%KiB == 0:
		return fmt.Sprintf("%d KiB", n/KiB)
	}
	return fmt.Sprintf("%d bytes", n)
}
