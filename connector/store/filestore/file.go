package filestore

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/connector-engine/connector/connector/store"
)

// formatVersion is the layout of the store file. A file with a higher number
// was written by a newer connector and is refused rather than rewritten.
const formatVersion = 1

// ErrCorrupt: the store file exists but cannot be understood. It is never
// replaced by an empty store.
var ErrCorrupt = errors.New("the connection store file is damaged")

// fileData is the whole store file.
type fileData struct {
	Format      int          `json:"format"`
	Connections []fileRecord `json:"connections"` // ordered by ID
}

// fileRecord is one connection on disk: everything readable except the token,
// which is sealed with the connection ID and binding as associated data
// (base64 in JSON).
type fileRecord struct {
	ID             string        `json:"id"`
	Definition     string        `json:"definition"`
	Binding        store.Binding `json:"binding,omitzero"` // the token's associated data with ID; absent in records written before bindings
	Status         store.Status  `json:"status"`
	Reason         string        `json:"reason,omitempty"`
	RefreshStarted time.Time     `json:"refresh_started,omitzero"`
	Version        int64         `json:"version"`
	UpdatedAt      time.Time     `json:"updated_at"`
	SealedToken    []byte        `json:"token_sealed"`
}

func (f *fileData) index(id string) (int, bool) {
	return slices.BinarySearchFunc(f.Connections, id, func(r fileRecord, id string) int {
		return strings.Compare(r.ID, id)
	})
}

// decodeFile parses and checks the store file. Its errors give a position,
// never content: the file holds sealed secrets.
func decodeFile(path string, data []byte) (*fileData, error) {
	var f fileData
	if err := json.Unmarshal(data, &f); err != nil {
		var syntax *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case len(data) == 0:
			return nil, corrupt(path, "the file is empty")
		case errors.As(err, &syntax):
			return nil, corrupt(path, fmt.Sprintf("invalid JSON at byte %d", syntax.Offset))
		case errors.As(err, &typ):
			return nil, corrupt(path, fmt.Sprintf("field %q has the wrong type at byte %d", typ.Field, typ.Offset))
		default:
			return nil, corrupt(path, "not a connection store")
		}
	}
	switch {
	case f.Format == 0:
		return nil, corrupt(path, "no format number; this is not a connection store")
	case f.Format > formatVersion:
		return nil, fmt.Errorf("filestore: %s has format %d, written by a newer connector than this one (format %d); upgrade connector to use it", path, f.Format, formatVersion)
	}
	slices.SortFunc(f.Connections, func(a, b fileRecord) int { return strings.Compare(a.ID, b.ID) })
	for i, r := range f.Connections {
		switch {
		case r.ID == "":
			return nil, corrupt(path, fmt.Sprintf("connection number %d has no id", i+1))
		case i > 0 && f.Connections[i-1].ID == r.ID:
			return nil, corrupt(path, fmt.Sprintf("connection %q appears twice", r.ID))
		case len(r.SealedToken) == 0:
			return nil, corrupt(path, fmt.Sprintf("connection %q has no sealed token", r.ID))
		}
	}
	return &f, nil
}

func corrupt(path, detail string) error {
	return fmt.Errorf("filestore: %s: %w (%s); it was left unchanged: restore it from a backup, or move it aside to start an empty store (every connection will then need authorizing again)", path, ErrCorrupt, detail)
}

func encodeFile(f *fileData) ([]byte, error) {
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("filestore: encoding the store: %w", err)
	}
	if int64(len(data))+1 > maxFileSize { // it could not be read back
		return nil, fmt.Errorf("filestore: the store would grow past %s, the most a file store holds; nothing was written: keep this many connections in sqlite:// or postgres:// instead", sizeText(maxFileSize))
	}
	return append(data, '\n'), nil
}

// tempPattern names the temporary files of writes to path; they are hidden
// and share a prefix so that leftovers of a crash can be found.
func tempPattern(path string) string { return "." + filepath.Base(path) + ".tmp-*" }

// writeAtomic replaces path with data so that a crash at any point leaves
// either the old file or the new one: the data goes to a temporary file in the
// same directory (rename is atomic only within a file system), which is
// synced before the rename; the directory is synced after it so that the
// rename itself survives a power loss.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, tempPattern(path)) // mode 0600
	if err != nil {
		return fmt.Errorf("filestore: writing the connection store: %w", err)
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("filestore: writing the connection store %s (it is unchanged): %w", path, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("filestore: the connection store %s was replaced but may not survive a power loss: %w", path, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && runtime.GOOS != "windows" {
		return err
	}
	return nil
}

// removeTemps deletes temporary files left by a writer that crashed. The
// caller holds the store lock, and writers only make them under it, so none
// can belong to a live writer.
func removeTemps(path string) {
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(path), tempPattern(path)))
	for _, name := range leftovers {
		os.Remove(name)
	}
}

// maxFileSize caps the store file: a record is about a kilobyte, so this
// holds far more connections than one file store should, and a file
// replaced by something huge (a log, a disk image) is refused instead of
// read into memory whole. A variable so that tests can lower it.
var maxFileSize int64 = 256 << 20

// readFile returns the store file's contents; a missing file is an empty
// store.
func readFile(path string) (*fileData, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &fileData{Format: formatVersion}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("filestore: reading the connection store: %w", err)
	}
	defer f.Close()
	data, err := readCapped(path, f)
	if err != nil {
		return nil, err
	}
	return decodeFile(path, data)
}

func sizeText(n int64) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d KiB", n>>10)
}

// readCapped reads the whole store file, refusing one over maxFileSize.
func readCapped(path string, r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("filestore: reading the connection store: %w", err)
	}
	if int64(len(data)) > maxFileSize {
		return nil, fmt.Errorf("filestore: %s: %w (it is larger than %s, the most a file store holds, so it was not read); check that the path names the connection store, and keep that many connections in sqlite:// or postgres:// instead", path, ErrCorrupt, sizeText(maxFileSize))
	}
	return data, nil
}
