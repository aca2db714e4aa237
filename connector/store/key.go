package store

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// EnvSecretKey names the environment variable that holds the sealing key,
// base64-encoded. When set it takes precedence over the key file.
const EnvSecretKey = "CONNECTOR_SECRET_KEY"

// LoadKey finds the sealing key: the base64 value of CONNECTOR_SECRET_KEY
// (standard or URL alphabet, padded or not, 32 bytes decoded) when that is
// set, else the key file at keyFile. A missing key file is created with a new
// random key, base64-encoded, mode 0600; a key file that group or others can
// access is refused.
func LoadKey(keyFile string) ([]byte, error) {
	key, _, err := loadKey(keyFile)
	return key, err
}

// LoadSealer is LoadKey followed by NewSealer; the Sealer remembers where its
// key came from so that errors can name it.
func LoadSealer(keyFile string) (*Sealer, error) {
	key, source, err := loadKey(keyFile)
	if err != nil {
		return nil, err
	}
	s, err := NewSealer(key)
	if err != nil {
		return nil, err
	}
	s.source = source
	return s, nil
}

func loadKey(keyFile string) (key []byte, source string, err error) {
	if v, ok := os.LookupEnv(EnvSecretKey); ok {
		key, err := decodeKey(v)
		if err != nil {
			return nil, "", fmt.Errorf("store: %s %w", EnvSecretKey, err)
		}
		return key, EnvSecretKey, nil
	}
	if keyFile == "" {
		return nil, "", fmt.Errorf("store: no secret key: set %s or give a key file path", EnvSecretKey)
	}
	key, err = readKeyFile(keyFile)
	if errors.Is(err, fs.ErrNotExist) {
		if err := createKeyFile(keyFile); err != nil {
			return nil, "", err
		}
		// Read back rather than use the key just made: if another process
		// created the file first, its key is the one.
		key, err = readKeyFile(keyFile)
	}
	if err != nil {
		return nil, "", err
	}
	return key, "key file " + keyFile, nil
}

// decodeKey decodes a base64 key; its errors complete a sentence that starts
// with where the key came from, and never quote the value.
func decodeKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("is empty; it must be 32 bytes, base64-encoded (make one with: openssl rand -base64 32)")
	}
	decodedLen := -1
	for _, enc := range []*base64.Encoding{
		base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding,
	} {
		key, err := enc.DecodeString(s)
		if err != nil {
			continue
		}
		if len(key) == KeySize {
			return key, nil
		}
		decodedLen = len(key)
	}
	if decodedLen >= 0 {
		return nil, fmt.Errorf("decodes to %d bytes; the key must be %d bytes, base64-encoded (make one with: openssl rand -base64 32)", decodedLen, KeySize)
	}
	return nil, fmt.Errorf("is not base64 (standard or URL alphabet); the key must be %d bytes, base64-encoded (make one with: openssl rand -base64 32)", KeySize)
}

// readKeyFile reads and checks an existing key file. A missing file gives an
// error matching fs.ErrNotExist.
func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("store: reading key file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("store: reading key file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("store: key file %s is not a regular file", path)
	}
	// Windows has no such mode bits; its ACLs are the user's to manage.
	if perm := st.Mode().Perm(); runtime.GOOS != "windows" && perm&0o077 != 0 {
		return nil, fmt.Errorf("store: key file %s is accessible by group or others (mode %04o); restrict it with: chmod 600 %s", path, perm, path)
	}
	// A key file is ~45 bytes; reading a bounded amount keeps a wrong path
	// (a large file) from being slurped.
	data, err := io.ReadAll(io.LimitReader(f, 1024))
	if err != nil {
		return nil, fmt.Errorf("store: reading key file: %w", err)
	}
	key, err := decodeKey(string(data))
	if err != nil {
		return nil, fmt.Errorf("store: key file %s %w", path, err)
	}
	return key, nil
}

// createKeyFile makes a key file holding a new random key, unless one appears
// first. The key is written to a private temporary file, synced, then
// hard-linked into place: link fails if the name exists, so of two processes
// starting at once exactly one publishes its key, and a reader never sees a
// half-written file (which a bare O_EXCL create followed by a write allows).
func createKeyFile(path string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("store: creating key file directory: %w", err)
	}
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("store: generating a secret key: %w", err)
	}
	content := []byte(base64.StdEncoding.EncodeToString(key) + "\n")

	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*") // O_EXCL, mode 0600
	if err != nil {
		return fmt.Errorf("store: creating key file: %w", err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName)
	_, err = tmp.Write(content)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("store: writing key file: %w", err)
	}

	err = os.Link(tmpName, path)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		// Some file systems have no hard links: fall back to an exclusive
		// create, which still lets only one process win.
		err = createExclusive(path, content)
	}
	if errors.Is(err, fs.ErrExist) {
		return nil // another process made it; the caller reads that key
	}
	if err != nil {
		return fmt.Errorf("store: creating key file: %w", err)
	}
	return syncDir(dir)
}

func createExclusive(path string, content []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(content)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}

// syncDir makes a new directory entry durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("store: syncing directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && runtime.GOOS != "windows" {
		return fmt.Errorf("store: syncing directory %s: %w", dir, err)
	}
	return nil
}
