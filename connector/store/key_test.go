package store

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// unsetKeyEnv removes CONNECTOR_SECRET_KEY for one test (t.Setenv restores it
// afterwards), since a set but empty variable is an error, not an absence.
func unsetKeyEnv(t *testing.T) {
	t.Helper()
	t.Setenv(EnvSecretKey, "")
	os.Unsetenv(EnvSecretKey)
}

func TestLoadKeyFromEnv(t *testing.T) {
	// 0xfb 0xff encodes to "+/" in the standard alphabet and "-_" in the URL
	// one, so each encoding is really exercised.
	key := bytes.Repeat([]byte{0xfb, 0xff}, 16)
	good := []struct{ name, value string }{
		{"standard", base64.StdEncoding.EncodeToString(key)},
		{"URL", base64.URLEncoding.EncodeToString(key)},
		{"standard unpadded", base64.RawStdEncoding.EncodeToString(key)},
		{"URL unpadded", base64.RawURLEncoding.EncodeToString(key)},
		{"trailing newline", base64.StdEncoding.EncodeToString(key) + "\n"},
	}
	for _, tc := range good {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvSecretKey, tc.value)
			keyFile := filepath.Join(t.TempDir(), "key")
			got, err := LoadKey(keyFile)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, key) {
				t.Errorf("LoadKey = %x, want %x", got, key)
			}
			if _, err := os.Stat(keyFile); !os.IsNotExist(err) {
				t.Errorf("a key file was created although %s is set", EnvSecretKey)
			}
		})
	}

	bad := []struct{ name, value, want string }{
		{"empty", "", "is empty"},
		{"not base64", "this is not base64 at all!", "not base64"},
		{"16 bytes", base64.StdEncoding.EncodeToString(make([]byte, 16)), "decodes to 16 bytes"},
		{"33 bytes", base64.StdEncoding.EncodeToString(make([]byte, 33)), "decodes to 33 bytes"},
		{"raw key", string(bytes.Repeat([]byte{'k'}, 31)) + "!", "not base64"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvSecretKey, tc.value)
			_, err := LoadKey(filepath.Join(t.TempDir(), "key"))
			if err == nil {
				t.Fatal("LoadKey succeeded")
			}
			msg := err.Error()
			if !strings.Contains(msg, EnvSecretKey) || !strings.Contains(msg, tc.want) {
				t.Errorf("error %q should name %s and say %q", msg, EnvSecretKey, tc.want)
			}
			if tc.value != "" && strings.Contains(msg, strings.TrimSpace(tc.value)) {
				t.Errorf("error %q echoes the key", msg)
			}
		})
	}
}

func TestLoadKeyCreatesFile(t *testing.T) {
	unsetKeyEnv(t)
	dir := filepath.Join(t.TempDir(), "new", "dir")
	keyFile := filepath.Join(dir, "secret.key")
	key, err := LoadKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(key) != KeySize || bytes.Equal(key, make([]byte, KeySize)) {
		t.Fatalf("LoadKey made %d bytes %x; want 32 random bytes", len(key), key)
	}
	st, err := os.Stat(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode = %04o, want 0600", st.Mode().Perm())
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Errorf("key directory mode = %04o, want 0700", st.Mode().Perm())
	}
	content, _ := os.ReadFile(keyFile)
	if got := strings.TrimSpace(string(content)); got != base64.StdEncoding.EncodeToString(key) {
		t.Errorf("key file holds %q, want the key in base64", got)
	}
	again, err := LoadKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, key) {
		t.Error("second LoadKey returned a different key")
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".*")); len(leftovers) > 0 {
		t.Errorf("temporary files left behind: %v", leftovers)
	}
}

func TestLoadKeyFilePermissions(t *testing.T) {
	unsetKeyEnv(t)
	content := []byte(base64.StdEncoding.EncodeToString(make([]byte, 32)) + "\n")
	for _, tc := range []struct {
		mode os.FileMode
		ok   bool
	}{
		{0o600, true},
		{0o400, true},
		{0o644, false},
		{0o640, false},
		{0o604, false},
		{0o620, false},
		{0o666, false},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			keyFile := filepath.Join(t.TempDir(), "key")
			if err := os.WriteFile(keyFile, content, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(keyFile, tc.mode); err != nil {
				t.Fatal(err)
			}
			_, err := LoadKey(keyFile)
			if tc.ok {
				if err != nil {
					t.Errorf("LoadKey: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("LoadKey accepted a key file others can access")
			}
			if msg := err.Error(); !strings.Contains(msg, "chmod 600 "+keyFile) {
				t.Errorf("error %q does not say to chmod 600 the file", msg)
			}
		})
	}
}

func TestLoadKeyFileBadContent(t *testing.T) {
	unsetKeyEnv(t)
	for _, tc := range []struct{ name, content, want string }{
		{"empty", "", "is empty"},
		{"garbage", "hunter2-not-a-key!", "not base64"},
		{"short key", base64.StdEncoding.EncodeToString(make([]byte, 16)), "decodes to 16 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keyFile := filepath.Join(t.TempDir(), "key")
			if err := os.WriteFile(keyFile, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadKey(keyFile)
			if err == nil {
				t.Fatal("LoadKey succeeded")
			}
			msg := err.Error()
			if !strings.Contains(msg, keyFile) || !strings.Contains(msg, tc.want) {
				t.Errorf("error %q should name %s and say %q", msg, keyFile, tc.want)
			}
			if tc.content != "" && strings.Contains(msg, tc.content) {
				t.Errorf("error %q echoes the file's content", msg)
			}
		})
	}
}

func TestLoadKeyConcurrentCreationAgrees(t *testing.T) {
	unsetKeyEnv(t)
	keyFile := filepath.Join(t.TempDir(), "key")
	const n = 16
	keys := make([][]byte, n)
	errs := make([]error, n)
	var start, wg sync.WaitGroup
	start.Add(1)
	for i := range n {
		wg.Go(func() {
			start.Wait()
			keys[i], errs[i] = LoadKey(keyFile)
		})
	}
	start.Done()
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("LoadKey #%d: %v", i, errs[i])
		}
		if !bytes.Equal(keys[i], keys[0]) {
			t.Fatalf("LoadKey #%d returned a different key from #0", i)
		}
	}
	onDisk, err := LoadKey(keyFile)
	if err != nil || !bytes.Equal(onDisk, keys[0]) {
		t.Fatalf("the key file does not hold the key every caller got (err %v)", err)
	}
}

func TestLoadKeyNoSource(t *testing.T) {
	unsetKeyEnv(t)
	if _, err := LoadKey(""); err == nil || !strings.Contains(err.Error(), EnvSecretKey) {
		t.Errorf("LoadKey(\"\") = %v; want an error naming %s", err, EnvSecretKey)
	}
}

func TestLoadSealerKeySource(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "key")

	t.Setenv(EnvSecretKey, base64.StdEncoding.EncodeToString(make([]byte, 32)))
	s, err := LoadSealer(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if s.KeySource() != EnvSecretKey {
		t.Errorf("KeySource = %q, want %q", s.KeySource(), EnvSecretKey)
	}

	unsetKeyEnv(t)
	s, err = LoadSealer(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if want := "key file " + keyFile; s.KeySource() != want {
		t.Errorf("KeySource = %q, want %q", s.KeySource(), want)
	}
}
