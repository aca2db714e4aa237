package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/connector-engine/connector/connector/emulator"
	"github.com/connector-engine/connector/connector/server"
	"github.com/connector-engine/connector/connector/server/scheduler"
	"github.com/connector-engine/connector/connector/server/state"
	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/connector/store/filestore"
	"github.com/connector-engine/connector/connector/store/pgstore"
)

type serveFlags struct {
	addr, store, keyFile, publicURL string
	allowHosts, returnTo            []string
	allowPrivate, demo              bool
	engineCache                     int
	// connectLifetime and adminLifetime bound a connect link and an admin
	// page sign-in; zero means the server's defaults.
	connectLifetime, adminLifetime time.Duration
	// eventRetention is how long delivered events and dead letters are kept.
	eventRetention time.Duration
}

// Bounds of the lifetime flags: a link or session shorter than the floor
// cannot be used (a person must read, sign in and consent), and one longer
// than the ceiling is a standing credential nobody remembers handing out.
var lifetimeBounds = map[string][2]time.Duration{
	"connect-lifetime":       {time.Minute, 7 * 24 * time.Hour},
	"admin-session-lifetime": {5 * time.Minute, 7 * 24 * time.Hour},
}

// checkEngineCache gives --engine-cache 0 its meaning, none kept (each use
// rebuilds the engine from the store), which server.Config spells
// NoEngineCache because its zero value is the default; a negative size has
// no meaning and is refused, naming the flag.
func (f *serveFlags) checkEngineCache() error {
	switch {
	case f.engineCache < 0:
		return usageErrorf("--engine-cache %d: give how many engines to keep, from 0 (none: each use rebuilds the connection's engine from the store) up; default %d", f.engineCache, server.DefaultEngineCache)
	case f.engineCache == 0:
		f.engineCache = server.NoEngineCache
	}
	return nil
}

// checkLifetimes refuses a lifetime flag outside its bounds, naming it.
func (f *serveFlags) checkLifetimes(c *cobra.Command) error {
	for name, d := range map[string]time.Duration{"connect-lifetime": f.connectLifetime, "admin-session-lifetime": f.adminLifetime} {
		if !c.Flags().Changed(name) {
			continue
		}
		b := lifetimeBounds[name]
		if d < b[0] || d > b[1] {
			return usageErrorf("--%s %s: give a duration from %s to %s, such as --%s %s", name, d, b[0], b[1], name, lifetimeExample[name])
		}
	}
	return nil
}

var lifetimeExample = map[string]string{"connect-lifetime": "2h", "admin-session-lifetime": "1h"}

func (f *serveFlags) bindStore(c *cobra.Command) {
	c.Flags().StringVar(&f.store, "store", "",
		"the server's database: an SQLite file (or sqlite:///path) or a postgres:// URL shared by every replica (default: $CONNECTOR_STORE when it names a database, else connector.db in the state directory)")
	c.Flags().StringVar(&f.keyFile, "key-file", "", "the key that seals secrets at rest (default: secret.key next to an SQLite file; $CONNECTOR_SECRET_KEY wins; required for PostgreSQL)")
}

func (a *app) serveCommand() *cobra.Command {
	var f serveFlags
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run the multi-tenant connections service (HTTP API)",
		Long: `serve runs the multi-tenant connections service (API under /v1, described at
/v1/openapi.json). Its state and the tokens live in one database: an SQLite
file by default, or PostgreSQL (--store postgres://...), which any number of
replicas share. Create API keys with 'connector serve keys create'.
--demo starts it on a temporary database with a Procore emulator and a ready
OAuth client, and prints an admin key.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.checkLifetimes(cmd); err != nil {
				return err
			}
			if f.eventRetention < state.MinEventRetention {
				// A purged delivery's key no longer de-duplicates: a provider's
				// redelivery after the purge would be forwarded again.
				return usageErrorf("--event-retention %s: give at least %s (Stripe redelivers for up to 3 days; a redelivery after the purge would be forwarded twice), such as --event-retention 720h", f.eventRetention, state.MinEventRetention)
			}
			if err := f.checkEngineCache(); err != nil {
				return err
			}
			ctx, cancel := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer cancel()
			return a.serve(ctx, f, nil)
		},
	}
	f.bindStore(c)
	c.Flags().StringVar(&f.addr, "addr", "127.0.0.1:8080", "the address to listen on")
	c.Flags().StringVar(&f.publicURL, "public-url", "", "where browsers reach the server, for the OAuth redirect URI (default: http://ADDR)")
	c.Flags().StringSliceVar(&f.allowHosts, "allow-hosts", nil, "hosts an OAuth client's base_url/login_url and uploaded definitions may name (exact, or *.example.com); repeatable")
	c.Flags().BoolVar(&f.allowPrivate, "allow-private", false, "let those hosts be loopback or private addresses")
	c.Flags().StringSliceVar(&f.returnTo, "return-to", nil, "URL prefixes a browser may be sent back to after authorizing; repeatable")
	c.Flags().DurationVar(&f.connectLifetime, "connect-lifetime", 0, "how long a connect link (POST /v1/connect-sessions) works, from 1m to 168h (default 30m)")
	c.Flags().DurationVar(&f.adminLifetime, "admin-session-lifetime", 0, "how long an admin page sign-in lasts, from 5m to 168h (default 8h)")
	c.Flags().DurationVar(&f.eventRetention, "event-retention", state.DefaultEventRetention, "how long delivered events, dead letters and webhook de-duplication keys are kept, at least 72h")
	c.Flags().BoolVar(&f.demo, "demo", false, "a temporary database, a Procore emulator and a ready OAuth client")
	c.Flags().IntVar(&f.engineCache, "engine-cache", server.DefaultEngineCache, "how many connections' engines to keep in memory (least recently used dropped first; rebuilt from the store when used again); 0 keeps none")
	keys := &cobra.Command{Use: "keys", Short: "Manage API keys"}
	keys.AddCommand(a.keysCreateCommand(), a.keysListCommand(), a.keysDeleteCommand())
	c.AddCommand(keys)
	return c
}

func (a *app) keysCreateCommand() *cobra.Command {
	var (
		f      serveFlags
		tenant string
		scopes []string
	)
	c := &cobra.Command{
		Use:   "create",
		Short: "Create an API key for a tenant (created when new) and print it, once",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var sc []state.Scope
			for _, s := range scopes {
				p, err := state.ParseScope(s)
				if err != nil {
					return usageErrorf("--scope: %w", err)
				}
				sc = append(sc, p)
			}
			if tenant == "" || len(sc) == 0 {
				return usageErrorf("give --tenant and at least one --scope (%s)", strings.Join(scopeNames(), ", "))
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
			defer cancel()
			st, err := openServeStorage(ctx, f)
			if err != nil {
				return err
			}
			defer st.Close()
			if _, err := st.State.EnsureTenant(ctx, tenant, ""); err != nil {
				return usageErrorf("--tenant: %w", err)
			}
			key, k, err := st.State.CreateKey(ctx, tenant, sc)
			if err != nil {
				return &exitError{code: exitFailed, err: err}
			}
			fmt.Fprintln(a.stdout, key)
			fmt.Fprintf(a.stderr, "API key %s for tenant %s with scopes %s. It is shown only this once: keep it in your secret manager.\n", k.ID, tenant, strings.Join(scopes, ", "))
			return nil
		},
	}
	f.bindStore(c)
	c.Flags().StringVar(&tenant, "tenant", "", "the tenant the key belongs to")
	c.Flags().StringSliceVar(&scopes, "scope", nil, "a scope: "+strings.Join(scopeNames(), ", ")+"; repeatable or comma-separated")
	return c
}

func (a *app) keysListCommand() *cobra.Command {
	var (
		f      serveFlags
		tenant string
	)
	c := &cobra.Command{
		Use:   "list",
		Short: "List a tenant's API keys (ids, scopes, creation and last use; never the keys)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withTenantStorage(cmd.Context(), f, tenant, func(ctx context.Context, st *server.Storage) error {
				keys, err := st.State.Keys(ctx, tenant)
				if err != nil {
					return &exitError{code: exitFailed, err: err}
				}
				for _, k := range keys {
					used := "never"
					if !k.LastUsed.IsZero() {
						used = k.LastUsed.Format(time.RFC3339)
					}
					fmt.Fprintf(a.stdout, "%s\t%s\tcreated %s\tlast used %s\n", k.ID, joinScopeList(k.Scopes), k.Created.Format(time.RFC3339), used)
				}
				if len(keys) == 0 {
					fmt.Fprintf(a.stderr, "tenant %s has no API keys\n", tenant)
				}
				return nil
			})
		},
	}
	f.bindStore(c)
	c.Flags().StringVar(&tenant, "tenant", "", "the tenant whose keys to list")
	return c
}

func (a *app) keysDeleteCommand() *cobra.Command {
	var (
		f      serveFlags
		tenant string
	)
	c := &cobra.Command{
		Use:   "delete KEY-ID",
		Short: "Revoke one of a tenant's API keys; running replicas stop accepting it (see connector/server/README.md for how soon)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.HasPrefix(args[0], state.KeyPrefix) && tenant != "" {
				return usageErrorf("give the key's id (key_..., from 'connector serve keys list'), not the key itself")
			}
			return withTenantStorage(cmd.Context(), f, tenant, func(ctx context.Context, st *server.Storage) error {
				if err := st.State.DeleteKey(ctx, tenant, args[0]); errors.Is(err, state.ErrNotFound) {
					return usageErrorf("tenant %s has no API key %s ('connector serve keys list --tenant %s' lists them)", tenant, args[0], tenant)
				} else if err != nil {
					return &exitError{code: exitFailed, err: err}
				}
				fmt.Fprintf(a.stderr, "API key %s of tenant %s deleted\n", args[0], tenant)
				return nil
			})
		},
	}
	f.bindStore(c)
	c.Flags().StringVar(&tenant, "tenant", "", "the tenant the key belongs to")
	return c
}

// withTenantStorage runs f on the database --store names, for the
// subcommands that act on one tenant's keys: --tenant is required.
func withTenantStorage(ctx context.Context, fl serveFlags, tenant string, f func(context.Context, *server.Storage) error) error {
	if tenant == "" {
		return usageErrorf("give --tenant")
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	st, err := openServeStorage(ctx, fl)
	if err != nil {
		return err
	}
	defer st.Close()
	return f(ctx, st)
}

func joinScopeList(s []state.Scope) string {
	out := make([]string, len(s))
	for i, sc := range s {
		out[i] = string(sc)
	}
	return strings.Join(out, ",")
}

func scopeNames() []string {
	var out []string
	for _, s := range state.Scopes {
		out = append(out, string(s))
	}
	return out
}

// openServeStorage opens the database --store names, with the sealing key.
func openServeStorage(ctx context.Context, f serveFlags) (*server.Storage, error) {
	spec := f.store
	if spec == "" {
		if env := os.Getenv(filestore.EnvStore); env != "" && !strings.HasSuffix(env, ".json") {
			spec = env
		}
	}
	if spec == "" {
		p, err := filestore.DefaultPath()
		if err != nil {
			return nil, &exitError{code: exitFailed, err: err}
		}
		spec = filepath.Join(filepath.Dir(p), "connector.db")
	}
	if strings.HasSuffix(spec, ".json") {
		return nil, usageErrorf("--store %s is a token file; the server needs a database: an SQLite file (connector.db) or a postgres:// URL", spec)
	}
	keyFile := f.keyFile
	if pgstore.IsURL(spec) {
		if _, set := os.LookupEnv(store.EnvSecretKey); !set && keyFile == "" {
			return nil, usageErrorf("replicas sharing PostgreSQL must share the key that seals secrets: set %s (make one with: openssl rand -base64 32) or pass --key-file", store.EnvSecretKey)
		}
	} else if keyFile == "" {
		keyFile = filepath.Join(filepath.Dir(strings.TrimPrefix(spec, "sqlite://")), "secret.key")
	}
	sealer, err := store.LoadSealer(keyFile)
	if err != nil {
		return nil, &exitError{code: exitFailed, err: err}
	}
	st, err := server.OpenStorage(ctx, spec, sealer)
	if err != nil {
		return nil, &exitError{code: exitFailed, err: err}
	}
	return st, nil
}

// serve runs the server until ctx ends, then shuts down gracefully: no new
// connections, in-flight requests finish (up to shutdownGrace), and the
// database handles close, releasing any lock held. ready, when set, is
// told the listening address.
func (a *app) serve(ctx context.Context, f serveFlags, ready func(addr string)) error {
	logger := slog.New(slog.NewJSONHandler(a.stderr, nil))
	var cleanup []func()
	defer func() {
		for i := len(cleanup) - 1; i >= 0; i-- {
			cleanup[i]()
		}
	}()
	var emu *emulator.Server
	var emuURL, demoSecret string
	if f.demo {
		dir, err := os.MkdirTemp("", "connector-serve-demo-")
		if err != nil {
			return err
		}
		cleanup = append(cleanup, func() { os.RemoveAll(dir) })
		f.store, f.keyFile = filepath.Join(dir, "connector.db"), filepath.Join(dir, "secret.key")
		f.allowHosts, f.allowPrivate = append(f.allowHosts, "127.0.0.1"), true
		demoSecret = randomSecret()
		emu = emulator.New(emulator.Config{Clients: []emulator.Client{{ID: "connector-serve-demo", Secret: demoSecret, Name: "connector serve demo"}}})
		if emuURL, err = emu.Start(ctx, "127.0.0.1:0"); err != nil {
			return err
		}
		cleanup = append(cleanup, func() { emu.Close() })
	}
	octx, cancel := context.WithTimeout(ctx, time.Minute)
	st, err := openServeStorage(octx, f)
	cancel()
	if err != nil {
		return err
	}
	cleanup = append(cleanup, func() { st.Close() })
	defs, err := a.definitions()
	if err != nil {
		return err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", f.addr)
	if err != nil {
		return &exitError{code: exitFailed, err: fmt.Errorf("listening on %s: %w", f.addr, err)}
	}
	public := f.publicURL
	if public == "" {
		public = "http://" + ln.Addr().String()
	}
	srv, err := server.New(server.Config{
		State: st.State, Tokens: st.Tokens, Definitions: defs, PublicURL: public,
		ReturnTo: f.returnTo, AllowHosts: f.allowHosts, AllowPrivate: f.allowPrivate, Logger: logger,
		EngineCache:     f.engineCache,
		ConnectLifetime: f.connectLifetime, AdminLifetime: f.adminLifetime,
		EventRetention: f.eventRetention,
	})
	if err != nil {
		ln.Close()
		return usageErrorf("%w", err)
	}
	if f.demo {
		if err := a.seedDemo(ctx, st, srv, emuURL, demoSecret, public); err != nil {
			ln.Close()
			return err
		}
	}
	// The event delivery worker: stopped (its attempts in flight released)
	// before the databases close.
	wctx, stopWorkers := context.WithCancel(context.Background())
	workersDone := make(chan error, 1)
	go func() { workersDone <- srv.RunWorkers(wctx) }()
	defer func() { stopWorkers(); <-workersDone }()
	// The refresh scheduler runs on every replica; it stops before the
	// databases close (deferred after their cleanup, so it runs first), as
	// a refresh it sent must be recorded.
	sch, err := srv.Scheduler(scheduler.Config{})
	if err != nil {
		ln.Close()
		return &exitError{code: exitFailed, err: err}
	}
	schCtx, stopScheduler := context.WithCancel(ctx)
	schDone := make(chan struct{})
	go func() { defer close(schDone); _ = sch.Run(schCtx) }()
	defer func() { stopScheduler(); <-schDone }()
	hs := server.HTTPServer(f.addr, srv)
	done := make(chan error, 1)
	go func() { done <- hs.Serve(ln) }()
	logger.Info("serving", "addr", ln.Addr().String(), "public_url", public)
	if ready != nil {
		ready(ln.Addr().String())
	}
	select {
	case err := <-done:
		return &exitError{code: exitFailed, err: err}
	case <-ctx.Done():
	}
	logger.Info("shutting down: finishing in-flight requests")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return &exitError{code: exitFailed, err: fmt.Errorf("shutting down: %w", err)}
	}
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return &exitError{code: exitFailed, err: err}
	}
	return nil
}

const shutdownGrace = 30 * time.Second

func randomSecret() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x", b)
}

// seedDemo makes the demo tenant, its admin key and an OAuth client for the
// emulator, and prints how to use them.
func (a *app) seedDemo(ctx context.Context, st *server.Storage, srv *server.Server, emuURL, secret, public string) error {
	if _, err := st.State.EnsureTenant(ctx, "demo", "Demo tenant"); err != nil {
		return err
	}
	key, _, err := st.State.CreateKey(ctx, "demo", []state.Scope{state.ScopeAdmin})
	if err != nil {
		return err
	}
	cl, err := st.State.CreateClient(ctx, state.Client{Tenant: "demo", Definition: "procore", ClientID: "connector-serve-demo", Secret: secret,
		RedirectURI: srv.RedirectURI(), BaseURL: emuURL, LoginURL: emuURL})
	if err != nil {
		return err
	}
	w := a.stdout
	fmt.Fprintf(w, "connector serve --demo: a Procore emulator at %s and a temporary database.\n\n", emuURL)
	fmt.Fprintf(w, "Admin URL:  %s/v1/openapi.json\nAdmin key:  %s   (tenant demo, scope admin; shown once)\nOAuth client: %s (definition procore)\n\n", public, key, cl.ID)
	fmt.Fprintf(w, "Try:\n  export KEY=%s\n", key)
	fmt.Fprintf(w, "  curl -s -H \"Authorization: Bearer $KEY\" -d '{\"oauth_client\":\"%s\"}' %s/v1/connections\n", cl.ID, public)
	fmt.Fprintf(w, "  curl -s -H \"Authorization: Bearer $KEY\" -X POST %s/v1/connections/ID/authorize   # open authorization_url in a browser\n", public)
	fmt.Fprintf(w, "  curl -s -H \"Authorization: Bearer $KEY\" %s/v1/connections/ID/proxy/rest/v1.0/me\n\n", public)
	fmt.Fprintln(w, "Ctrl-C stops the server and removes the database.")
	return nil
}
