package scheduler_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/connector/emulator"
	"github.com/connector-engine/connector/connector/internal/pgtest"
	"github.com/connector-engine/connector/connector/server"
	"github.com/connector-engine/connector/connector/server/scheduler"
	"github.com/connector-engine/connector/connector/server/state"
	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/connector/token"
	"github.com/connector-engine/connector/definitions"
)

func TestMain(m *testing.M) {
	if os.Getenv(envChild) != "" {
		os.Exit(runChild())
	}
	os.Exit(pgtest.Main(m))
}

const (
	emuClientID = "scheduler-test-app"
	emuSecret   = "scheduler-test-secret-0123456789"
	tenant      = "acme"
)

// keepAliveDefs is Procore with a keep-alive policy, and Procore as shipped
// (no policy) for contrast.
func keepAliveDefs(t testing.TB) *definitions.Set {
	t.Helper()
	set, err := parseKeepAliveDefs()
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func parseKeepAliveDefs() (*definitions.Set, error) {
	src := `name: procore-keepalive
extends: procore
auth:
  oauth:
    keep_alive: {refresh_ahead: true}
    token_response: {refresh_margin: 2s}
`
	return definitions.Parse(definitions.Builtin(), definitions.File{Path: "procore-keepalive.yaml", Data: []byte(src)})
}

// setPolicy changes a loaded definition's policy: the definition rules
// refuse an idle_refresh under a minute, which a test cannot wait for.
func setPolicy(t testing.TB, set *definitions.Set, name string, k definitions.KeepAlive) {
	t.Helper()
	d, err := set.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	d.Auth.OAuth.KeepAlive = k
}

type fixture struct {
	t      testing.TB
	spec   string // the database
	sealer *store.Sealer
	key    []byte
	defs   *definitions.Set
	emu    *emulator.Server
	emuURL string
	client state.Client // per definition name
	first  *replica
}

type replica struct {
	storage *server.Storage
	srv     *server.Server
	metrics *prometheus.Registry
}

type fixtureOptions struct {
	emu func(*emulator.Config)
}

func newFixture(t testing.TB, spec string, o fixtureOptions) *fixture {
	t.Helper()
	cfg := emulator.Config{Clients: []emulator.Client{{ID: emuClientID, Secret: emuSecret}}, TokenLifetime: time.Hour, RateLimit: 1 << 30}
	if o.emu != nil {
		o.emu(&cfg)
	}
	emu := emulator.New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	emuURL, err := emu.Start(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	sealer, err := store.NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, spec: spec, sealer: sealer, key: key, defs: keepAliveDefs(t), emu: emu, emuURL: emuURL}
	f.first = f.replica()
	if _, err := f.first.storage.State.EnsureTenant(ctx, tenant, ""); err != nil {
		t.Fatal(err)
	}
	return f
}

// replica opens the database again and serves it, as another host would.
func (f *fixture) replica() *replica {
	t := f.t
	st, err := server.OpenStorage(context.Background(), f.spec, f.sealer)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	reg := prometheus.NewRegistry()
	srv, err := server.New(server.Config{State: st.State, Tokens: st.Tokens, Definitions: f.defs, Registry: reg,
		PublicURL: "http://127.0.0.1:1", Logger: slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	return &replica{storage: st, srv: srv, metrics: reg}
}

func (f *fixture) oauthClient(def string) state.Client {
	f.t.Helper()
	c, err := f.first.storage.State.CreateClient(context.Background(), state.Client{Tenant: tenant, Definition: def, ClientID: emuClientID, Secret: emuSecret,
		RedirectURI: "http://127.0.0.1:1/oauth/callback", BaseURL: f.emuURL, LoginURL: f.emuURL})
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

// binding is what the server's engine binds the client's connections'
// tokens to (as server.engineConnection builds them).
func (f *fixture) binding(cl state.Client) store.Binding {
	f.t.Helper()
	def, err := f.defs.Lookup(cl.Definition)
	if err != nil {
		f.t.Fatal(err)
	}
	c := &connector.Connection{ID: "x", Tenant: cl.Tenant, Definition: def, ClientID: cl.ClientID, ClientSecret: cl.Secret,
		RedirectURI: cl.RedirectURI, Scopes: cl.Scopes, Fields: map[string]string{}, BaseURL: cl.BaseURL, LoginURL: cl.LoginURL}
	b, err := c.Binding()
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

// seeded is a connection made without a browser: its row, and tokens the
// emulator issued, stored as an authorization would have.
type seeded struct {
	id      string
	refresh string
	expiry  time.Time
}

// seed makes n connections of cl whose tokens were obtained at obtained
// and expire at expiry(i).
func (f *fixture) seed(cl state.Client, n int, obtained time.Time, expiry func(i int) time.Time) []seeded {
	f.t.Helper()
	ctx := context.Background()
	b := f.binding(cl)
	out := make([]seeded, n)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	next := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range next {
				c, err := f.first.storage.State.CreateConnection(ctx, state.Connection{Tenant: tenant, Client: cl.ID, Status: state.StatusConnected})
				if err != nil {
					errs <- err
					return
				}
				at, rt, err := f.emu.IssueTokens(emuClientID)
				if err != nil {
					errs <- err
					return
				}
				exp := expiry(i)
				rec := store.Record{ID: c.ID, Definition: cl.Definition, Binding: b, Status: store.StatusConnected,
					Token: token.Token{AccessToken: at, RefreshToken: rt, TokenType: "bearer", Expiry: exp, Obtained: obtained}}
				if _, err := f.first.storage.Tokens.Put(ctx, rec); err != nil {
					errs <- err
					return
				}
				out[i] = seeded{id: c.ID, refresh: rt, expiry: exp}
			}
		})
	}
	for i := range n {
		select {
		case next <- i:
		case err := <-errs:
			close(next)
			wg.Wait()
			f.t.Fatal(err)
		}
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		f.t.Fatal(err)
	default:
	}
	return out
}

// eventsOf counts the connection's events of type typ.
func (f *fixture) eventsOf(conn, typ string) int {
	f.t.Helper()
	evs, _, err := f.first.storage.State.ListEvents(context.Background(), tenant, conn, state.EventFilter{Type: typ})
	if err != nil {
		f.t.Fatal(err)
	}
	return len(evs)
}

// running is a scheduler started on a replica.
type running struct {
	sch  *scheduler.Scheduler
	stop func() // cancels Run and waits for it to return
}

func (f *fixture) start(r *replica, cfg scheduler.Config) *running {
	f.t.Helper()
	if cfg.Poll == 0 {
		cfg.Poll = 200 * time.Millisecond
	}
	if cfg.Discover == 0 {
		cfg.Discover = 500 * time.Millisecond
	}
	if cfg.Backoff == (scheduler.Backoff{}) {
		cfg.Backoff = scheduler.Backoff{Base: 100 * time.Millisecond, Max: time.Second}
	}
	sch, err := r.srv.Scheduler(cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sch.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				f.t.Errorf("Run: %v", err)
			}
		})
	}
	f.t.Cleanup(stop)
	return &running{sch: sch, stop: stop}
}

// waitFor polls cond until it holds, failing after limit (a hang, not a
// speed assertion: limit is minutes past what the test needs).
func waitFor(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// backends runs f on SQLite and on PostgreSQL.
func backends(t *testing.T, f func(t *testing.T, spec string)) {
	t.Run("sqlite", func(t *testing.T) { f(t, filepath.Join(t.TempDir(), "connector.db")) })
	t.Run("postgres", func(t *testing.T) { f(t, pgtest.Shared(t)) })
}

func keyEnv(key []byte) string { return base64.StdEncoding.EncodeToString(key) }

var _ = fmt.Sprint

func postgres(t testing.TB) string { return pgtest.Shared(t) }

// metric is the value of the replica's metric name with the labels.
func (r *replica) metric(t testing.TB, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := r.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	t.Fatalf("no metric %s%v", name, labels)
	return 0
}
