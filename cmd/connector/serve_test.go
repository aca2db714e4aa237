package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServe runs a.serve until the test ends and returns its base URL.
func startServe(t *testing.T, f serveFlags) (string, *syncBuffer, *syncBuffer, func() error) {
	t.Helper()
	out, errs := &syncBuffer{}, &syncBuffer{}
	a := &app{stdout: out, stderr: errs}
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- a.serve(ctx, f, func(s string) { addr <- s }) }()
	var base string
	select {
	case s := <-addr:
		base = "http://" + s
	case err := <-done:
		cancel()
		t.Fatalf("serve: %v\n%s", err, errs.String())
	}
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { _ = stop() })
	return base, out, errs, stop
}

func get(t *testing.T, url, key string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServeKeysAndOperations(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "connector.db")
	t.Setenv("CONNECTOR_SECRET_KEY", "")
	os.Unsetenv("CONNECTOR_SECRET_KEY") // restored by Setenv's cleanup
	code, stdout, stderr := runCLI(t, "serve", "keys", "create", "--store", db, "--key-file", filepath.Join(dir, "secret.key"), "--tenant", "acme", "--scope", "connections:read,token")
	if code != 0 {
		t.Fatalf("keys create: %d %s", code, stderr)
	}
	key := strings.TrimSpace(stdout)
	if !strings.HasPrefix(key, "cks_") || strings.Contains(stderr, key) || !strings.Contains(stderr, "shown only this once") {
		t.Fatalf("keys create printed %q / %q", stdout, stderr)
	}
	for _, bad := range [][]string{
		{"--tenant", "acme", "--scope", "root"},
		{"--scope", "token"},
		{"--tenant", "Not A Tenant", "--scope", "token"},
	} {
		args := append([]string{"serve", "keys", "create", "--store", db, "--key-file", filepath.Join(dir, "secret.key")}, bad...)
		if code, _, stderr := runCLI(t, args...); code != exitUsage || stderr == "" {
			t.Errorf("keys create %v: exit %d, %q", bad, code, stderr)
		}
	}
	if code, _, stderr := runCLI(t, "serve", "--store", filepath.Join(dir, "store.json")); code != exitUsage || !strings.Contains(stderr, "needs a database") {
		t.Errorf("serve on a token file: %d %q", code, stderr)
	}

	base, _, logs, stop := startServe(t, serveFlags{addr: "127.0.0.1:0", store: db, keyFile: filepath.Join(dir, "secret.key")})
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ready", "/metrics": "connector_connections"} {
		if code, body := get(t, base+path, ""); code != 200 || !strings.Contains(body, want) {
			t.Errorf("%s: %d %s", path, code, body)
		}
	}
	if code, body := get(t, base+"/v1/connections", key); code != 200 || !strings.Contains(body, `"connections"`) {
		t.Errorf("list with the new key: %d %s", code, body)
	}
	if code, _ := get(t, base+"/v1/oauth-clients", key); code != 403 {
		t.Errorf("admin route with a read key: %d", code)
	}
	if code, body := get(t, base+"/metrics", ""); !strings.Contains(body, `connector_http_requests_total{route="GET /v1/connections",status="200"} 1`) {
		t.Errorf("metrics do not count the request: %d %s", code, body)
	}
	// keys list and delete, from another process's view of the database:
	// the running server stops accepting the deleted key at its next request.
	storeArgs := []string{"--store", db, "--key-file", filepath.Join(dir, "secret.key")}
	code, stdout, stderr = runCLI(t, append([]string{"serve", "keys", "list", "--tenant", "acme"}, storeArgs...)...)
	id, _, _ := strings.Cut(stdout, "\t")
	if code != 0 || !strings.HasPrefix(id, "key_") || !strings.Contains(stdout, "connections:read,token") || strings.Contains(stdout+stderr, key) {
		t.Fatalf("keys list: %d %q %q", code, stdout, stderr)
	}
	for _, bad := range []struct {
		args []string
		says string
	}{
		{[]string{"delete", id}, "give --tenant"},
		{[]string{"delete", "--tenant", "acme", key}, "the key's id"},
		{[]string{"delete", "--tenant", "globex", id}, "tenant globex has no API key " + id},
		{[]string{"list"}, "give --tenant"},
	} {
		code, _, stderr := runCLI(t, append(append([]string{"serve", "keys"}, bad.args...), storeArgs...)...)
		if code != exitUsage || !strings.Contains(stderr, bad.says) || strings.Contains(stderr, key) {
			t.Errorf("keys %v: exit %d, %q; want usage saying %q", bad.args[:1], code, stderr, bad.says)
		}
	}
	if code, _, stderr := runCLI(t, append([]string{"serve", "keys", "delete", "--tenant", "acme", id}, storeArgs...)...); code != 0 || !strings.Contains(stderr, "deleted") {
		t.Fatalf("keys delete: %d %q", code, stderr)
	}
	if code, body := get(t, base+"/v1/connections", key); code != 401 {
		t.Errorf("the running server still accepts a key deleted by another process: %d %s", code, body)
	}
	if err := stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if strings.Contains(logs.String(), key) {
		t.Fatal("the API key is in the server's log")
	}
	if n := strings.Count(logs.String(), `"msg":"request"`); n < 6 {
		t.Fatalf("%d request log lines, want one per request:\n%s", n, logs.String())
	}
}

func TestServeDemo(t *testing.T) {
	base, out, _, stop := startServe(t, serveFlags{addr: "127.0.0.1:0", demo: true})
	text := out.String()
	if !strings.Contains(text, "Admin URL:  "+base+"/v1/openapi.json") {
		t.Fatalf("demo output lacks the admin URL:\n%s", text)
	}
	var key string
	for _, l := range strings.Split(text, "\n") {
		if k, ok := strings.CutPrefix(l, "Admin key:  "); ok {
			key = strings.Fields(k)[0]
		}
	}
	code, body := get(t, base+"/v1/oauth-clients", key)
	if code != 200 || !strings.Contains(body, `"definition":"procore"`) {
		t.Fatalf("demo client: %d %s", code, body)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestServeLifetimes: --connect-lifetime and --admin-session-lifetime reach
// the server (a connect link's expiry, the sign-in page's promise), and
// values outside their bounds are refused, naming the flag, before anything
// starts.
func TestServeLifetimes(t *testing.T) {
	for _, bad := range []struct {
		args []string
		says string
	}{
		{[]string{"--connect-lifetime", "0s"}, "--connect-lifetime 0s: give a duration from 1m0s to 168h0m0s"},
		{[]string{"--connect-lifetime", "-5m"}, "--connect-lifetime -5m0s: give a duration from 1m0s"},
		{[]string{"--connect-lifetime", "30s"}, "--connect-lifetime 30s: give a duration from 1m0s"},
		{[]string{"--connect-lifetime", "200h"}, "--connect-lifetime 200h0m0s: give a duration from 1m0s to 168h0m0s, such as --connect-lifetime 2h"},
		{[]string{"--admin-session-lifetime", "1m"}, "--admin-session-lifetime 1m0s: give a duration from 5m0s to 168h0m0s, such as --admin-session-lifetime 1h"},
		{[]string{"--admin-session-lifetime", "8d"}, `invalid argument "8d" for "--admin-session-lifetime"`},
		{[]string{"--connect-lifetime", "soon"}, `invalid argument "soon" for "--connect-lifetime"`},
		{[]string{"--event-retention", "71h"}, "--event-retention 71h0m0s: give at least 72h0m0s (Stripe redelivers for up to 3 days"},
		{[]string{"--event-retention", "0s"}, "--event-retention 0s: give at least 72h0m0s"},
	} {
		code, stdout, stderr := runCLI(t, append([]string{"serve", "--addr", "127.0.0.1:0", "--store", filepath.Join(t.TempDir(), "never.db")}, bad.args...)...)
		if code != exitUsage || !strings.Contains(stderr, bad.says) || strings.Contains(stdout+stderr, `"msg":"serving"`) {
			t.Errorf("serve %v: exit %d, %q; want usage saying %q", bad.args, code, stderr, bad.says)
		}
	}

	base, out, _, stop := startServe(t, serveFlags{addr: "127.0.0.1:0", demo: true, connectLifetime: 2 * time.Hour, adminLifetime: 90 * time.Minute})
	var key, client string
	for _, l := range strings.Split(out.String(), "\n") {
		if k, ok := strings.CutPrefix(l, "Admin key:  "); ok {
			key = strings.Fields(k)[0]
		}
		if c, ok := strings.CutPrefix(l, "OAuth client: "); ok {
			client = strings.Fields(c)[0]
		}
	}
	before := time.Now()
	req, _ := http.NewRequest("POST", base+"/v1/connect-sessions", strings.NewReader(`{"oauth_clients":["`+client+`"]}`))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var cs struct {
		Expires time.Time `json:"expires_at"`
	}
	err = json.NewDecoder(resp.Body).Decode(&cs)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("connect session: %d %v", resp.StatusCode, err)
	}
	if d := cs.Expires.Sub(before); d < 2*time.Hour-time.Minute || d > 2*time.Hour+time.Minute {
		t.Errorf("the connect link expires %s after it was made, want 2h (--connect-lifetime)", d)
	}
	if code, body := get(t, base+"/admin", ""); code != 200 || !strings.Contains(body, "after 1h30m0s") {
		t.Errorf("the sign-in page does not promise the 1h30m session of --admin-session-lifetime: %d\n%s", code, body)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestServeEngineCache: --engine-cache 0 keeps no engine (the server's
// engine cache has capacity 0, as /metrics reports), a size is used as
// given, and a negative one is refused, naming the flag and the range,
// with the usage exit code, before anything starts.
func TestServeEngineCache(t *testing.T) {
	for _, bad := range []string{"-1", "-10000"} {
		code, stdout, stderr := runCLI(t, "serve", "--addr", "127.0.0.1:0", "--store", filepath.Join(t.TempDir(), "never.db"), "--engine-cache", bad)
		if code != exitUsage || !strings.Contains(stderr, "--engine-cache "+bad+": give how many engines to keep, from 0 (none") || strings.Contains(stdout+stderr, `"msg":"serving"`) {
			t.Errorf("serve --engine-cache %s: exit %d, %q", bad, code, stderr)
		}
	}
	for size, capacity := range map[string]string{"0": "0", "7": "7"} {
		t.Run(size, func(t *testing.T) {
			out, errs := &syncBuffer{}, &syncBuffer{}
			a := &app{stdout: out, stderr: errs}
			root := a.rootCommand()
			root.SetArgs([]string{"serve", "--demo", "--addr", "127.0.0.1:0", "--engine-cache", size})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- root.ExecuteContext(ctx) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Error(err)
				}
			}()
			var base string
			for base == "" {
				select {
				case err := <-done:
					done <- err
					t.Fatalf("serve ended: %v\n%s", err, errs.String())
				case <-time.After(20 * time.Millisecond): // wait for the demo's banner
				}
				for _, l := range strings.Split(out.String(), "\n") {
					if u, ok := strings.CutPrefix(l, "Admin URL:  "); ok {
						base = strings.TrimSuffix(u, "/v1/openapi.json")
					}
				}
			}
			code, body := get(t, base+"/metrics", "")
			if code != 200 || !strings.Contains(body, "\nconnector_engine_cache_capacity "+capacity+"\n") {
				t.Errorf("--engine-cache %s: /metrics (%d) does not report capacity %s:\n%s", size, code, capacity, body)
			}
		})
	}
}
