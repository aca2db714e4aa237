package filestore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
)

// snapshot keeps the store file that Get and List last parsed, so that
// reading an unchanged file costs a stat instead of a parse. It holds that
// file open: an open inode cannot be freed and its number reused, so a path
// that still names the same device and inode names this very file; and as
// writers replace the file rather than change it, its content is what was
// parsed. Size and modification time are compared too, in case a person
// edits the file in place.
//
// Writers never use it: a read-modify-write reads the file afresh under the
// store lock.
type snapshot struct {
	mu   sync.Mutex
	file *os.File
	info os.FileInfo
	data *fileData // shared by readers: never modified once cached
	done bool      // closed: cache nothing more
}

// load returns the store's current content, which the caller must not modify.
func (c *snapshot) load(path string) (*fileData, error) {
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &fileData{Format: formatVersion}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("filestore: reading the connection store: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.info != nil && os.SameFile(c.info, st) && c.info.Size() == st.Size() && c.info.ModTime().Equal(st.ModTime()) {
		return c.data, nil
	}

	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) { // deleted since the stat
		return &fileData{Format: formatVersion}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("filestore: reading the connection store: %w", err)
	}
	info, err := f.Stat() // of the file read, whatever the path names by now
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("filestore: reading the connection store: %w", err)
	}
	raw, err := readCapped(path, f)
	if err != nil {
		f.Close()
		return nil, err
	}
	data, err := decodeFile(path, raw)
	if err != nil {
		f.Close()
		return nil, err
	}
	c.closeLocked()
	if c.done {
		f.Close()
		return data, nil
	}
	c.file, c.info, c.data = f, info, data
	return data, nil
}

func (c *snapshot) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.done = true
	c.closeLocked()
}

func (c *snapshot) closeLocked() {
	if c.file != nil {
		c.file.Close()
	}
	c.file, c.info, c.data = nil, nil, nil
}
