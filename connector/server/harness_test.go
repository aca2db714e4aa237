package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/emulator"
	"github.com/connector-engine/connector/connector/internal/pgtest"
	"github.com/connector-engine/connector/connector/server"
	"github.com/connector-engine/connector/connector/server/state"
	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/definitions"
)

func TestMain(m *testing.M) {
	if os.Getenv(envReplica) != "" {
		os.Exit(runChildReplica())
	}
	os.Exit(pgtest.Main(m))
}

// secrets collects every secret the tests issue, and logs every log line,
// so that TestZZNoSecretInLogs can grep the one for the other.
var secrets = struct {
	sync.Mutex
	issued []string
	logs   bytes.Buffer
}{}

func remember(s ...string) {
	secrets.Lock()
	defer secrets.Unlock()
	for _, v := range s {
		if len(v) >= 8 {
			secrets.issued = append(secrets.issued, v)
		}
	}
}

type logSink struct{}

func (logSink) Write(p []byte) (int, error) {
	secrets.Lock()
	defer secrets.Unlock()
	return secrets.logs.Write(p)
}

const (
	emuClientID = "server-test-app"
	emuSecret   = "emulator-client-secret-0123456789"
)

func randomKey(t testing.TB) *store.Sealer {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	lastKey = key
	s, err := store.NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// env is a running server (one or more replicas on one database) with an
// emulator, two tenants and their keys.
// lastKey is the sealing key of the latest env, for child replicas.
var lastKey []byte

type env struct {
	t        testing.TB
	emu      *emulator.Server
	emuURL   string
	replicas []*replica
	keys     map[string]string // "acme:admin", "globex:admin", "acme:token", ...
}

type replica struct {
	srv     *server.Server
	url     string
	storage *server.Storage
}

// backends runs f on the embedded database and on PostgreSQL.
func backends(t *testing.T, f func(t *testing.T, spec func(t *testing.T) string)) {
	t.Run("sqlite", func(t *testing.T) {
		f(t, func(t *testing.T) string { return filepath.Join(t.TempDir(), "connector.db") })
	})
	t.Run("postgres", func(t *testing.T) {
		f(t, func(t *testing.T) string { return pgtest.Shared(t) })
	})
}

type envOptions struct {
	replicas      int
	tokenLifetime time.Duration
	margin        time.Duration
	definitions   *definitions.Set
	returnTo      []string // more allow-listed return_to prefixes
	engineCache   int      // Config.EngineCache
}

func newEnv(t testing.TB, spec string, o envOptions) *env {
	t.Helper()
	if o.replicas == 0 {
		o.replicas = 1
	}
	emu := emulator.New(emulator.Config{
		Clients:       []emulator.Client{{ID: emuClientID, Secret: emuSecret, Name: "server test"}},
		TokenLifetime: o.tokenLifetime,
		RateLimit:     1 << 30,
	})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	emuURL, err := emu.Start(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	e := &env{t: t, emu: emu, emuURL: emuURL, keys: map[string]string{}}
	sealer := randomKey(t)
	for range o.replicas {
		e.replicas = append(e.replicas, e.startReplica(spec, sealer, o))
	}
	db := e.replicas[0].storage.State
	for _, tenant := range []string{"acme", "globex"} {
		if _, err := db.EnsureTenant(ctx, tenant, ""); err != nil {
			t.Fatal(err)
		}
		for _, sc := range state.Scopes {
			key, _, err := db.CreateKey(ctx, tenant, []state.Scope{sc})
			if err != nil {
				t.Fatal(err)
			}
			remember(key)
			e.keys[tenant+":"+string(sc)] = key
		}
	}
	remember(emuSecret)
	return e
}

func (e *env) startReplica(spec string, sealer *store.Sealer, o envOptions) *replica {
	t := e.t
	st, err := server.OpenStorage(context.Background(), spec, sealer)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Every replica shares one public URL in production (a load balancer);
	// here each has its own, and the tests choose where a browser goes.
	public := "http://" + ln.Addr().String()
	srv, err := server.New(server.Config{
		State: st.State, Tokens: st.Tokens, PublicURL: public,
		ReturnTo:   append([]string{"https://platform.example.com/connected"}, o.returnTo...),
		AllowHosts: []string{"127.0.0.1"}, AllowPrivate: true,
		Logger:      slog.New(slog.NewJSONHandler(logSink{}, nil)),
		TokenMargin: o.margin, Definitions: o.definitions, EngineCache: o.engineCache,
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := &httptest.Server{Listener: ln, Config: server.HTTPServer("", srv)}
	hs.Start()
	t.Cleanup(hs.Close)
	return &replica{srv: srv, url: hs.URL, storage: st}
}

// response is an API answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("answer %d is not a JSON object: %v: %s", r.status, err, r.body)
	}
	return m
}

var client = &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// call sends a request to replica i with key (none when ""); body is JSON
// unless it is a string or []byte, which are sent as they are.
func (e *env) call(i int, method, path, key string, body any) response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, e.replicas[i].url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: data}
}

// must is call that expects status.
func (e *env) must(status, i int, method, path, key string, body any) map[string]any {
	e.t.Helper()
	r := e.call(i, method, path, key, body)
	if r.status != status {
		e.t.Fatalf("%s %s: %d, want %d: %s", method, path, r.status, status, r.body)
	}
	if len(r.body) == 0 {
		return nil
	}
	return r.json(e.t)
}

// client creates an OAuth client for the emulator as tenant.
func (e *env) oauthClient(tenant string) string {
	c := e.must(201, 0, "POST", "/v1/oauth-clients", e.keys[tenant+":admin"], map[string]any{
		"definition": "procore", "client_id": emuClientID, "client_secret": emuSecret,
		"base_url": e.emuURL, "login_url": e.emuURL,
	})
	return c["id"].(string)
}

func (e *env) connection(tenant, client string) string {
	c := e.must(201, 0, "POST", "/v1/connections", e.keys[tenant+":connections:write"], map[string]any{"oauth_client": client})
	return c["id"].(string)
}

var consentRequestID = regexp.MustCompile(`name="request_id" value="([^"]+)"`)

// consent plays the user at the emulator: approves (or denies) and returns
// the callback URL the provider redirects to.
func (e *env) consent(authURL, decision string) *url.URL {
	e.t.Helper()
	resp, err := client.Get(authURL)
	if err != nil {
		e.t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := consentRequestID.FindSubmatch(page)
	if m == nil {
		e.t.Fatalf("consent page (HTTP %d) has no request_id: %s", resp.StatusCode, page)
	}
	u, _ := url.Parse(authURL)
	u.RawQuery = ""
	resp, err = client.PostForm(u.String(), url.Values{"request_id": {string(m[1])}, "decision": {decision}})
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusFound {
		e.t.Fatalf("consent answered HTTP %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	remember(loc.Query().Get("code"), loc.Query().Get("state"))
	return loc
}

// authorizeApproved starts the authorization of conn through the API and
// follows it at a provider that approves at once (a redirect to the
// callback with a code: fosite, dpopserver), then gives the callback to
// replica 0 and returns its page.
func (e *env) authorizeApproved(tenant, conn string) response {
	e.t.Helper()
	a := e.must(201, 0, "POST", "/v1/connections/"+conn+"/authorize", e.keys[tenant+":connections:write"], nil)
	resp, err := client.Get(a["authorization_url"].(string))
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	cb, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || cb.Query().Get("code") == "" {
		e.t.Fatalf("the provider answered %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	remember(cb.Query().Get("code"), cb.Query().Get("state"))
	return e.browse(0, cb)
}

// browse sends the callback to replica i (whatever host the provider named).
func (e *env) browse(i int, callback *url.URL) response {
	e.t.Helper()
	resp, err := client.Get(e.replicas[i].url + callback.Path + "?" + callback.RawQuery)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: data}
}

// authorize runs the whole authorization of conn through the API: start on
// replica start, callback on replica finish.
func (e *env) authorize(tenant, conn string, start, finish int) {
	e.t.Helper()
	a := e.must(201, start, "POST", "/v1/connections/"+conn+"/authorize", e.keys[tenant+":connections:write"], nil)
	cb := e.consent(a["authorization_url"].(string), "allow")
	page := e.browse(finish, cb)
	if page.status != 200 || !strings.Contains(string(page.body), "Connected") {
		e.t.Fatalf("callback: %d %s", page.status, page.body)
	}
}

func problemField(t testing.TB, r response) string {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("answer %d has Content-Type %q, want application/problem+json: %s", r.status, ct, r.body)
	}
	m := r.json(t)
	f, _ := m["field"].(string)
	if m["detail"] == "" || m["status"] != float64(r.status) {
		t.Fatalf("problem without detail or status: %s", r.body)
	}
	return f
}

var _ = fmt.Sprint
