package main

import (
	"cmp"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/connector/store/filestore"
	"github.com/connector-engine/connector/connector/store/pgstore"
	"github.com/connector-engine/connector/connector/store/sqlitestore"
	"github.com/connector-engine/connector/connector/token"
	"github.com/connector-engine/connector/definitions"
)

// EnvConnection is the connection used when neither --connection nor
// --connection-string is given: a connection string if it contains '=',
// else a connection file.
const EnvConnection = "CONNECTOR_CONNECTION"

// connFlags are the flags that name a connection and where its tokens live.
type connFlags struct {
	file, str       string
	storePath, keys string
}

func (f *connFlags) bindStore(c *cobra.Command) {
	c.Flags().StringVar(&f.storePath, "store", "",
		"the connection store: a file, a sqlite:///path/to/file.db URL, or a postgres:// URL (default: $CONNECTOR_STORE, else $XDG_STATE_HOME/connector/store.json, else ~/.local/state/connector/store.json); a connection's own store setting must name this store")
	c.Flags().StringVar(&f.keys, "key-file", "",
		"the key that seals tokens at rest (default: secret.key next to a store file; $CONNECTOR_SECRET_KEY wins)")
}

func (f *connFlags) bind(c *cobra.Command) {
	c.Flags().StringVar(&f.file, "connection", "", "a connection file (YAML) (default: $"+EnvConnection+")")
	c.Flags().StringVar(&f.str, "connection-string", "",
		"a connection string, e.g. 'Definition=procore;OAuthClientId=...;CallbackURL=...' (default: $"+EnvConnection+" when it contains '=')")
	f.bindStore(c)
}

// session is an opened connection: its definition set, token source and store.
type session struct {
	conn   *connector.Connection
	store  store.Store
	source *connector.Source
}

func (s *session) Close() error { return s.store.Close() }

// env names the environment the connection uses, for summaries.
func (s *session) env() string {
	if s.conn.Environment != "" {
		return s.conn.Environment
	}
	return s.conn.Definition.DefaultEnvironment
}

// describe is "<key> (<definition>, <env>)", the subject of every summary line.
func (s *session) describe() string {
	return fmt.Sprintf("%s (%s, %s)", s.conn.Key(), s.conn.Definition.Name, s.env())
}

// loadConnection reads the connection named by --connection or
// --connection-string; it also returns the store location the connection
// names, if any, and the setting that named it (for errors).
func (a *app) loadConnection(f *connFlags) (*connector.Connection, namedStore, error) {
	if f.file != "" && f.str != "" {
		return nil, namedStore{}, usageErrorf("both --connection and --connection-string given; pass one")
	}
	if f.file == "" && f.str == "" {
		// A value with '=' is a connection string (Definition=...;...),
		// anything else a connection file.
		switch env := os.Getenv(EnvConnection); {
		case strings.Contains(env, "="):
			f.str = env
		case env != "":
			f.file = env
		default:
			return nil, namedStore{}, usageErrorf("no connection given: pass --connection FILE or --connection-string 'Definition=procore;...', or set $%s to either", EnvConnection)
		}
	}
	defs, err := a.definitions()
	if err != nil {
		return nil, namedStore{}, err
	}
	var (
		conn  *connector.Connection
		opts  connector.ConnectionOptions
		named namedStore
	)
	if f.file != "" {
		conn, opts, err = connector.LoadConnectionFile(f.file, defs)
		if err != nil {
			return nil, namedStore{}, &exitError{code: exitFailed, err: err}
		}
		named = namedStore{opts.StoreLocation, "connection file " + f.file + ": store"}
	} else {
		conn, opts, err = connector.ParseConnectionString(f.str, defs)
		if err != nil {
			if rest, ok := strings.CutPrefix(err.Error(), "connection string"); ok {
				// "connection string: X" and "connection string has N problems:"
				return nil, namedStore{}, usageErrorf("--connection-string%s", rest)
			}
			return nil, namedStore{}, usageErrorf("--connection-string: %w", err)
		}
		named = namedStore{opts.StoreLocation, "--connection-string: OAuthSettingsLocation"}
	}
	if err := conn.Validate(); err != nil {
		return nil, namedStore{}, &exitError{code: exitFailed, err: err}
	}
	return conn, named, nil
}

// namedStore is the store a connection string or file names
// (OAuthSettingsLocation, store:), and the setting that named it.
type namedStore struct {
	location, setting string
}

// chosenStore is the store the operator chose: --store, else
// $CONNECTOR_STORE, else the default file. how says which, for messages.
func (f *connFlags) chosenStore() (location, how string, err error) {
	switch env := os.Getenv(filestore.EnvStore); {
	case f.storePath != "":
		return f.storePath, "--store", nil
	case env != "":
		return env, "$" + filestore.EnvStore, nil
	}
	p, err := filestore.DefaultPath()
	if err != nil {
		return "", "", &exitError{code: exitFailed, err: err}
	}
	return p, "the default store", nil
}

// checkNamedStore refuses a connection that names a store other than the
// operator's. The connection string or file is the tenant's input, and the
// store decides where the CLI connects (a PostgreSQL URL makes pgx answer a
// cleartext password request with $PGPASSWORD) and where it creates key and
// lock files, so the tenant may not choose it. CData connection strings
// carry OAuthSettingsLocation, so naming the chosen store is accepted.
func checkNamedStore(named namedStore, chosen, how string) error {
	if named.location == "" || sameStore(named.location, chosen) {
		return nil
	}
	return &exitError{code: exitFailed, err: fmt.Errorf(
		"%s names the store %s, but this command uses %s (%s): the store is chosen by whoever runs the command (--store or $%s), not by the connection; remove the setting, or make it name that store",
		named.setting, showStore(named.location), showStore(chosen), how, filestore.EnvStore)}
}

// sameStore compares store locations: PostgreSQL URLs as parsed, files (and
// SQLite URLs' files) by absolute path.
func sameStore(a, b string) bool {
	if sqlitestore.IsURL(a) != sqlitestore.IsURL(b) {
		return false
	}
	if sqlitestore.IsURL(a) {
		pa, errA := sqlitestore.PathFromURL(a)
		pb, errB := sqlitestore.PathFromURL(b)
		if errA != nil || errB != nil {
			return false
		}
		a, b = pa, pb
	}
	if pgstore.IsURL(a) || pgstore.IsURL(b) {
		ua, errA := url.Parse(a)
		ub, errB := url.Parse(b)
		return errA == nil && errB == nil && pgstore.IsURL(a) && pgstore.IsURL(b) &&
			ua.User.String() == ub.User.String() && strings.EqualFold(ua.Host, ub.Host) &&
			ua.Path == ub.Path && ua.Query().Encode() == ub.Query().Encode()
	}
	pa, errA := filepath.Abs(a)
	pb, errB := filepath.Abs(b)
	return errA == nil && errB == nil && pa == pb
}

// showStore quotes a store location for a message, without a URL's password.
func showStore(loc string) string {
	if pgstore.IsURL(loc) {
		if u, err := url.Parse(loc); err == nil {
			return strconv.Quote(u.Redacted())
		}
		return "(a postgres URL that does not parse)"
	}
	return strconv.Quote(loc)
}

// openStore opens the operator's store (see chosenStore) once the
// connection's own store setting, if any, agrees with it: a PostgreSQL store
// for a postgres:// URL, the SQLite store for a sqlite:// URL, the file store
// otherwise. A file or SQLite store's key defaults to secret.key beside it; a
// PostgreSQL store is shared by hosts, so
// its key must be given (--key-file or $CONNECTOR_SECRET_KEY).
func (f *connFlags) openStore(named namedStore) (store.Store, error) {
	path, how, err := f.chosenStore()
	if err != nil {
		return nil, err
	}
	if err := checkNamedStore(named, path, how); err != nil {
		return nil, err
	}
	if pgstore.IsURL(path) {
		return f.openPostgres(path)
	}
	sqlite := sqlitestore.IsURL(path)
	if sqlite {
		p, err := sqlitestore.PathFromURL(path)
		if err != nil {
			return nil, usageErrorf("%w", err)
		}
		path = p
	}
	keyFile := f.keys
	if keyFile == "" {
		keyFile = filepath.Join(filepath.Dir(path), "secret.key")
	}
	sealer, err := store.LoadSealer(keyFile)
	if err != nil {
		return nil, &exitError{code: exitFailed, err: err}
	}
	var st store.Store
	if sqlite {
		st, err = sqlitestore.Open(path, sealer)
	} else {
		st, err = filestore.Open(path, sealer)
	}
	if err != nil {
		return nil, &exitError{code: exitFailed, err: err}
	}
	return st, nil
}

// pgOpenTimeout bounds connecting to the database and migrating it.
const pgOpenTimeout = 30 * time.Second

func (f *connFlags) openPostgres(dsn string) (store.Store, error) {
	if _, set := os.LookupEnv(store.EnvSecretKey); !set && f.keys == "" {
		return nil, usageErrorf("the PostgreSQL store is shared by every host that uses it, so they must share the key that seals its tokens: set %s (make one with: openssl rand -base64 32) or pass --key-file", store.EnvSecretKey)
	}
	sealer, err := store.LoadSealer(f.keys)
	if err != nil {
		return nil, &exitError{code: exitFailed, err: err}
	}
	ctx, cancel := context.WithTimeout(context.Background(), pgOpenTimeout)
	defer cancel()
	st, err := pgstore.Open(ctx, dsn, sealer)
	if err != nil {
		return nil, &exitError{code: exitFailed, err: err}
	}
	return st, nil
}

func (a *app) openSession(f *connFlags) (*session, error) {
	conn, loc, err := a.loadConnection(f)
	if err != nil {
		return nil, err
	}
	if conn.Definition.Auth.OAuth == nil {
		return nil, &exitError{code: exitFailed, err: fmt.Errorf("definition %s uses scheme %s, which has no OAuth tokens to manage", conn.Definition.Name, conn.Definition.Auth.Scheme)}
	}
	st, err := f.openStore(loc)
	if err != nil {
		return nil, err
	}
	src, err := connector.NewSource(conn, st)
	if err != nil {
		st.Close()
		return nil, &exitError{code: exitFailed, err: err}
	}
	a.verboseFor(conn, src)
	return &session{conn: conn, store: st, source: src}, nil
}

// tokenFailure turns a token error into what the user should do next. A
// connection that needs authorizing again exits 4, as gh does for auth.
func tokenFailure(s *session, err error) error {
	return connectionFailure(s.conn, err)
}

// connectionFailure names the connection in err, and for one that needs
// authorizing again says to run connect and exits 4.
func connectionFailure(c *connector.Connection, err error) error {
	var nr *connector.NeedsReauthError
	if errors.As(err, &nr) {
		if !strings.Contains(err.Error(), c.Key()) {
			err = fmt.Errorf("connection %s: %w", c.Key(), err)
		}
		if !strings.Contains(err.Error(), "connector connect") {
			err = fmt.Errorf("%w; run 'connector connect' with the same connection", err)
		}
		return &exitError{code: exitReauth, err: err}
	}
	if !strings.Contains(err.Error(), c.Key()) {
		err = fmt.Errorf("connection %s: %w", c.Key(), err)
	}
	return &exitError{code: exitFailed, err: err}
}

// expiresIn says how long a token has left, to the minute when that is long.
func expiresIn(t token.Token, now time.Time) string {
	if t.Expiry.IsZero() {
		return "token has no expiry"
	}
	d := t.Expiry.Sub(now)
	switch {
	case d <= 0:
		return "token expired"
	case d < time.Minute:
		return "token expires in " + d.Round(time.Second).String()
	}
	return "token expires in " + strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
}

// interruptible is ctx ended by Ctrl-C as well.
func interruptible(ctx context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(ctx, os.Interrupt)
}

func (a *app) connectCommand() *cobra.Command {
	var (
		f         connFlags
		noBrowser bool
		device    bool
		timeout   time.Duration
	)
	c := &cobra.Command{
		Use:   "connect",
		Short: "Authorize a connection and store its tokens",
		Long: `connect runs the connection's OAuth flow and stores the tokens. For the
authorization code flow it listens on the connection's loopback redirect URI,
opens the authorization URL in a browser (or, with --no-browser, prints only
that URL on stdout) and waits for the provider's redirect. For client
credentials it fetches a token. With --device (the default for a definition
with grant_type: device_code, RFC 8628) it prints a verification URL and a
code to enter there, on any device, opens the URL unless --no-browser, and
waits until the code is approved.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if s, ok, err := a.openOAuth1Session(&f); ok || err != nil { // oauth1connect.go
				if err != nil {
					return err
				}
				defer s.Close()
				return a.runConnectOAuth1(cmd, s, noBrowser, timeout)
			}
			s, err := a.openSession(&f)
			if err != nil {
				return err
			}
			defer s.Close()
			if s.conn.Initiate == connector.InitiateOff {
				return usageErrorf("connection %s has InitiateOAuth=OFF: it uses only the OAuthAccessToken it is given, so there is nothing to connect; use InitiateOAuth=GETANDREFRESH to run the flow", s.conn.Key())
			}
			ctx, cancel := interruptible(cmd.Context())
			defer cancel()
			ctx, cancelT := context.WithTimeout(ctx, timeout)
			defer cancelT()

			var tok token.Token
			grant := s.conn.Definition.Auth.OAuth.GrantType
			if device && grant != definitions.GrantDeviceCode {
				return usageErrorf("--device needs a definition with grant_type: device_code (RFC 8628); %s uses the %s grant", s.conn.Definition.Name, grant)
			}
			if grant == definitions.GrantDeviceCode {
				s.source.Flow().Choose = a.chooser(cmd.InOrStdin())
				t, err := a.connectDevice(ctx, s, noBrowser) // device.go
				if err != nil {
					if errors.Is(err, context.DeadlineExceeded) {
						err = fmt.Errorf("the code was not approved within %s; run connect again (and approve within --timeout)", timeout)
					}
					return &exitError{code: exitFailed, err: err}
				}
				tok = *t
			} else if grant == definitions.GrantClientCredentials {
				if tok, err = s.source.TokenContext(ctx); err != nil {
					return tokenFailure(s, err)
				}
			} else {
				ln, path, err := listenRedirect(ctx, s.conn.RedirectURI)
				if err != nil {
					return &exitError{code: exitFailed, err: err}
				}
				show := func(u string) {
					if noBrowser {
						fmt.Fprintln(a.stdout, u)
						return
					}
					a.openAuthorization(s.conn.Definition.Name, u) // browser.go
				}
				s.source.Flow().Choose = a.chooser(cmd.InOrStdin()) // learn requests with choose: ask
				t, err := authorize(ctx, s.source.Flow(), ln, path, show, s.source.Store, a.stderr)
				if err != nil {
					if errors.Is(err, context.DeadlineExceeded) {
						err = fmt.Errorf("no authorization arrived within %s; run connect again (and approve within --timeout)", timeout)
					}
					return &exitError{code: exitFailed, err: err}
				}
				tok = *t
			}
			fmt.Fprintf(a.stdout, "connected %s: %s\n", s.describe(), expiresIn(tok, time.Now()))
			return nil
		},
	}
	a.bindConn(&f, c)
	c.Flags().BoolVar(&noBrowser, "no-browser", false, "print only the authorization URL on stdout instead of opening a browser")
	c.Flags().BoolVar(&device, "device", false, "use the device authorization grant (RFC 8628): print a URL and a code to approve on any device (the default for grant_type: device_code)")
	c.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long to wait for the authorization")
	return c
}

// listenRedirect listens where the provider will send the browser back. The
// CLI can only receive a redirect on this machine, so the URI must be
// loopback http with a port (RFC 8252 7.3).
func listenRedirect(ctx context.Context, redirectURI string) (net.Listener, string, error) {
	u, err := url.Parse(redirectURI)
	bad := func(why string) error {
		return fmt.Errorf("redirect URI %q %s: the CLI receives the authorization on this machine, so the connection's redirect URI must be loopback, like http://127.0.0.1:8765/callback (register that URI with the provider)", redirectURI, why)
	}
	if err != nil || u.Scheme != "http" {
		return nil, "", bad("is not an http URI")
	}
	host := u.Hostname()
	if host != "localhost" {
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			return nil, "", bad("is not on a loopback host")
		}
	}
	if u.Port() == "" {
		return nil, "", bad("has no port")
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", net.JoinHostPort(host, u.Port()))
	if err != nil {
		return nil, "", fmt.Errorf("listening on the redirect URI %s: %w (is another connect running, or the port taken?)", redirectURI, err)
	}
	path := u.Path
	if path == "" {
		path = "/"
	}
	return ln, path, nil
}

// callback is one redirect handed from the listener to the flow; the
// listener answers the browser with what became of it.
type callback struct {
	query   url.Values
	outcome chan error // nil: the connection is authorized and stored
}

// authorize runs one authorization attempt: it serves the callback on ln at
// path, shows the authorization URL through show, exchanges the code and
// hands the token to keep (which stores it). It closes ln. When the URL
// expires by itself (a pushed authorization request's request_uri), notes
// (nil: none) is told when, and told again if that passes before the
// callback: the provider then refuses the link on a page of its own,
// which the CLI never sees.
func authorize(ctx context.Context, flow *connector.Flow, ln net.Listener, path string, show func(string), keep func(context.Context, *token.Token) error, notes io.Writer) (*token.Token, error) {
	attempt, err := flow.AuthCodeURLContext(ctx)
	if err != nil {
		ln.Close()
		return nil, err
	}
	stop := func() {}
	if until := attempt.URLExpires; notes != nil && !until.IsZero() {
		show, stop = linkExpiryNotes(show, until, notes)
		defer stop()
	}
	ours := func(q url.Values) bool { return stateMatches(q, attempt.State) }
	return receiveCallback(ctx, ln, path, "its state does not match", ours, func() { show(attempt.URL) }, func(ctx context.Context, q url.Values) (*token.Token, error) {
		stop() // the link did its job
		t, err := flow.Exchange(ctx, attempt, q)
		if err == nil {
			err = keep(ctx, t)
		}
		return t, err
	})
}

// receiveCallback serves the loopback redirect on ln at path until a
// request that ours accepts arrives, hands its query to complete (exchange
// and store) and answers the browser with what became of it. show (which
// sends the user to the provider) runs once the callback is served. It
// closes ln.
//
// Only the attempt's own redirect reaches complete: any web page the user
// has open can make the browser GET the loopback URL, and if such a stray
// request consumed the attempt the real redirect that follows would be
// refused. Strays get 400 (stray says why) and the wait goes on. The page
// shown for the real one says whether the connection was stored, the user
// denied access or the CLI refused the answer.
func receiveCallback(ctx context.Context, ln net.Listener, path, stray string, ours func(url.Values) bool, show func(), complete func(context.Context, url.Values) (*token.Token, error)) (*token.Token, error) {
	callbacks := make(chan callback, 1) // answered lets one through
	var answered atomic.Bool
	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != path || r.Method != http.MethodGet {
				http.NotFound(w, r)
				return
			}
			if !ours(r.URL.Query()) {
				callbackPage(w, http.StatusBadRequest, "This request is not the answer to the authorization connector is waiting for ("+stray+"), so it was ignored. connector is still waiting: finish the authorization in the window it opened.")
				return
			}
			if !answered.CompareAndSwap(false, true) {
				callbackPage(w, http.StatusConflict, "This authorization was already answered. Look at the terminal for the outcome; you can close this window.")
				return
			}
			cb := callback{query: r.URL.Query(), outcome: make(chan error, 1)}
			callbacks <- cb
			var err error
			select {
			case err = <-cb.outcome:
			case <-ctx.Done():
				callbackPage(w, http.StatusServiceUnavailable, "connector stopped waiting for this authorization (it timed out or was interrupted); nothing was stored. Run connect again.")
				return
			case <-r.Context().Done():
				return
			}
			var ce *connector.CallbackError
			switch {
			case err == nil:
				callbackPage(w, http.StatusOK, "Authorization received and the connection is stored. You can close this window.")
			case errors.As(err, &ce):
				callbackPage(w, http.StatusOK, "The authorization was not granted: "+err.Error()+". You can close this window.")
			default:
				callbackPage(w, http.StatusBadGateway, "connector could not complete the authorization, so nothing was stored: "+err.Error()+". Look at the terminal, then run connect again.")
			}
		}),
	}
	go func() { _ = srv.Serve(ln) }()
	defer func() {
		// Shutdown, not Close: the browser is still being sent the page
		// that says what became of its callback.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			srv.Close()
		}
	}()

	show()
	select {
	case cb := <-callbacks:
		t, err := complete(ctx, cb.query)
		cb.outcome <- err
		return t, err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// stateMatches reports whether a callback carries the attempt's state, in
// constant time. Flow.Exchange checks it again, with the expiry and issuer.
func stateMatches(q url.Values, state string) bool {
	got := q.Get("state")
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(state)) == 1
}

// callbackPage answers the browser on the loopback redirect.
func callbackPage(w http.ResponseWriter, status int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Referrer-Policy", "no-referrer") // the URL carries the code
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<!doctype html><html><head><meta charset=\"utf-8\"><title>connector</title></head><body><p>%s</p></body></html>\n", html.EscapeString(msg))
}

func (a *app) tokenCommand() *cobra.Command {
	var (
		f           connFlags
		asJSON      bool
		showSecrets bool
		format      string
	)
	c := &cobra.Command{
		Use:   "token",
		Short: "Print a valid access token, refreshing it if needed",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if asJSON {
				format = "json"
			}
			if err := checkOutput(format, tokenFormats...); err != nil {
				return err
			}
			s, err := a.openSession(&f)
			if err != nil {
				return err
			}
			defer s.Close()
			ctx, cancel := interruptible(cmd.Context())
			defer cancel()
			t, err := s.source.TokenContext(ctx)
			if err != nil {
				return tokenFailure(s, err)
			}
			if format == "text" && a.jq == "" {
				fmt.Fprintln(a.stdout, t.AccessToken)
				return nil
			}
			out := struct {
				AccessToken  string    `json:"access_token"`
				TokenType    string    `json:"token_type"`
				Expiry       time.Time `json:"expiry,omitzero"`
				Scopes       []string  `json:"scopes"`
				RefreshToken string    `json:"refresh_token,omitempty"`
			}{t.AccessToken, t.Type(), t.Expiry, t.Scopes, ""}
			if out.Scopes == nil {
				out.Scopes = []string{}
			}
			if showSecrets {
				out.RefreshToken = t.RefreshToken
			}
			return a.emit(format, out)
		},
	}
	a.bindConn(&f, c)
	a.bindOutput(c, &format, "text", tokenFormats...)
	c.Flags().BoolVar(&asJSON, "json", false, "the old name of -o json")
	_ = c.Flags().MarkHidden("json")
	c.Flags().BoolVar(&showSecrets, "show-secrets", false, "with -o json or yaml, include the refresh token")
	return c
}

// tokenFormats: text is the access token alone, for TOKEN=$(connector token).
var tokenFormats = []string{"text", "json", "yaml"}

func (a *app) refreshCommand() *cobra.Command {
	var f connFlags
	c := &cobra.Command{
		Use:   "refresh",
		Short: "Refresh a connection's token now",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.openSession(&f)
			if err != nil {
				return err
			}
			defer s.Close()
			ctx, cancel := interruptible(cmd.Context())
			defer cancel()
			t, err := s.source.Refresh(ctx)
			if err != nil {
				return tokenFailure(s, err)
			}
			fmt.Fprintf(a.stdout, "refreshed %s: %s\n", s.describe(), expiresIn(t, time.Now()))
			return nil
		},
	}
	a.bindConn(&f, c)
	return c
}

func (a *app) revokeCommand() *cobra.Command {
	var f connFlags
	c := &cobra.Command{
		Use:   "revoke",
		Short: "Revoke a connection's tokens at the provider and forget them",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.openSession(&f)
			if err != nil {
				return err
			}
			defer s.Close()
			ctx, cancel := interruptible(cmd.Context())
			defer cancel()
			// Source.Revoke checks the record's binding first: another
			// connection's tokens are never sent to this one's revoke URI.
			key := s.conn.Key()
			if rec, err := s.store.Get(ctx, key); err == nil && isRevoked(rec) {
				return &exitError{code: exitFailed, err: fmt.Errorf("connection %s: %s; nothing to revoke", key, rec.Reason)}
			}
			if err := s.source.Revoke(ctx); errors.Is(err, store.ErrNotFound) {
				return &exitError{code: exitFailed, err: fmt.Errorf("connection %s has no stored tokens; nothing to revoke", key)}
			} else if err != nil {
				return &exitError{code: exitFailed, err: err}
			}
			how := "revoked at the provider and removed from the store"
			if s.conn.Definition.Auth.OAuth.RevokeURI == nil {
				how = "removed from the store (the definition has no revoke URI, so the provider was not told)"
			}
			// A record without tokens remembers the revocation, so that
			// token, call and connections say so instead of "no token".
			mark := store.Record{ID: key, Definition: s.conn.Definition.Name, Status: store.StatusNeedsReauth,
				Reason: revokedReason + " on " + time.Now().UTC().Format("2006-01-02 15:04 MST")}
			if _, err := s.store.Put(ctx, mark); err != nil {
				return &exitError{code: exitFailed, err: fmt.Errorf("the tokens of connection %s were revoked, but recording that failed: %w", key, err)}
			}
			fmt.Fprintf(a.stdout, "revoked %s: tokens %s\n", s.describe(), how)
			return nil
		},
	}
	a.bindConn(&f, c)
	return c
}

// revokedReason starts the Reason of the record connector revoke leaves.
const revokedReason = "the connection was revoked with connector revoke"

// isRevoked reports whether rec is what connector revoke leaves: no tokens.
func isRevoked(rec store.Record) bool {
	return rec.Status == store.StatusNeedsReauth && rec.Token.AccessToken == "" && rec.Token.RefreshToken == "" &&
		strings.HasPrefix(rec.Reason, revokedReason)
}

func (a *app) connectionsCommand() *cobra.Command {
	var (
		f      connFlags
		format string
	)
	c := &cobra.Command{
		Use:   "connections",
		Short: "List the connections in the store",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(format, listFormats...); err != nil {
				return err
			}
			st, err := f.openStore(namedStore{})
			if err != nil {
				return err
			}
			defer st.Close()
			recs, err := st.List(cmd.Context())
			if err != nil {
				return &exitError{code: exitFailed, err: err}
			}
			defs, _ := a.definitions() // only to say what an interrupted refresh will do
			now := time.Now()
			if format != "table" || a.jq != "" {
				type row struct {
					ID             string            `json:"id"`
					Definition     string            `json:"definition"`
					Status         string            `json:"status"`
					Reason         string            `json:"reason,omitempty"`
					Values         map[string]string `json:"values,omitempty"` // learned when connecting; secret ones as ***
					Expiry         time.Time         `json:"expiry,omitzero"`
					RefreshStarted time.Time         `json:"refresh_started,omitzero"`
					UpdatedAt      time.Time         `json:"updated_at,omitzero"`
				}
				rows := []row{}
				for _, r := range recs {
					status, reason := connectionState(cmd.Context(), st, defs, r)
					if reason == "-" {
						reason = ""
					}
					rows = append(rows, row{r.ID, r.Definition, status, reason, learnedValues(defs, r), r.Token.Expiry, r.RefreshStarted, r.UpdatedAt})
				}
				return a.emit(format, rows)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tDEFINITION\tSTATUS\tEXPIRES IN\tVALUES\tREASON")
			for _, r := range recs {
				status, reason := connectionState(cmd.Context(), st, defs, r)
				exp := "-"
				switch {
				case r.Token.AccessToken == "" || r.Status == store.StatusNeedsReauth:
					// a token that cannot be used has no time left worth showing
				case r.Token.Expiry.IsZero():
					exp = "never"
				case !r.Token.Expiry.After(now):
					exp = "expired"
				default:
					exp = strings.TrimPrefix(expiresIn(r.Token, now), "token expires in ")
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", safeText(r.ID), safeText(r.Definition), status, exp, valuesText(learnedValues(defs, r)), safeText(reason))
			}
			return tw.Flush()
		},
	}
	f.bindStore(c)
	a.bindOutput(c, &format, "table", listFormats...)
	return c
}

// lockProbe bounds how long connections waits to learn whether a refresh
// marked in flight is still running.
const lockProbe = 2 * time.Second

// connectionState is the status and reason connections shows for a record.
// A record whose refresh was marked in flight is "refresh interrupted" when
// nobody holds its lock (the refreshing process died), with what the next
// use will do about it.
func connectionState(ctx context.Context, st store.Store, defs *definitions.Set, r store.Record) (status, reason string) {
	status, reason = cmp.Or(string(r.Status), "-"), cmp.Or(r.Reason, "-")
	if r.RefreshStarted.IsZero() || r.Status == store.StatusNeedsReauth {
		return status, reason
	}
	probe, cancel := context.WithTimeout(ctx, lockProbe)
	defer cancel()
	unlock, err := st.Lock(probe, r.ID)
	if err != nil {
		return "refreshing", "a refresh started at " + r.RefreshStarted.UTC().Format(time.RFC3339) + " is still running in another process"
	}
	_ = unlock()
	next := "the access token works until it expires; the next refresh then marks the connection as needing authorization again (the refresh may have reached the provider and its answer is lost, so the old refresh token is not sent again): run connector connect"
	if defs != nil {
		if d, err := defs.Lookup(r.Definition); err == nil && d.Auth.OAuth != nil && d.Auth.OAuth.IntrospectionURI != nil {
			next = "the access token works until it expires; the next refresh first asks the provider (introspection) whether the old refresh token is still unused: if it is, the connection refreshes as usual; if not, it needs authorizing again (connector connect)"
		}
	}
	return "refresh interrupted", "a refresh started at " + r.RefreshStarted.UTC().Format(time.RFC3339) + " did not finish; " + next
}
