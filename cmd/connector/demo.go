package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/connector/emulator"
	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/connector/store/filestore"
)

// demoTokenLifetime is short so that the demo can wait for a token to expire.
const demoTokenLifetime = 3 * time.Second

func (a *app) demoCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "demo",
		Short: "Connect to a local Procore emulator end to end, offline",
		Long: `demo runs the whole job against a Procore emulator on this machine: the
authorization code flow with PKCE (approving the consent page itself), an
encrypted token store in a temporary directory, API calls, and a refresh with
a rotated refresh token once the access token expires. It uses no network
beyond loopback and leaves nothing behind.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := interruptible(cmd.Context())
			defer cancel()
			ctx, cancelT := context.WithTimeout(ctx, time.Minute)
			defer cancelT()
			if err := a.demo(ctx); err != nil {
				return &exitError{code: exitFailed, err: fmt.Errorf("demo: %w", err)}
			}
			return nil
		},
	}
}

// fingerprint identifies a secret in output without revealing it.
func fingerprint(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return "sha256:" + hex.EncodeToString(sum[:4])
}

func (a *app) demo(ctx context.Context) error {
	step := 0
	say := func(format string, args ...any) {
		step++
		fmt.Fprintf(a.stdout, "%d. %s\n", step, fmt.Sprintf(format, args...))
	}
	detail := func(format string, args ...any) {
		fmt.Fprintf(a.stdout, "   %s\n", fmt.Sprintf(format, args...))
	}

	// 1. The provider.
	clientID, secret := "connector-demo", demoSecret()
	emu := emulator.New(emulator.Config{
		Clients:       []emulator.Client{{ID: clientID, Secret: secret, Name: "connector demo"}},
		TokenLifetime: demoTokenLifetime,
	})
	base, err := emu.Start(ctx, "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer emu.Close()
	say("Started a Procore emulator at %s (access tokens last %s, refresh tokens rotate)", base, demoTokenLifetime)

	// 2. The store: a temporary file sealed with a random key.
	dir, err := os.MkdirTemp("", "connector-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	sealer, err := store.NewSealer(key)
	if err != nil {
		return err
	}
	st, err := filestore.Open(filepath.Join(dir, "store.json"), sealer)
	if err != nil {
		return err
	}
	defer st.Close()
	say("Opened an encrypted token store in %s (random key, removed at the end)", dir)

	// 3. The connection, built in Go for the built-in procore definition.
	defs, err := a.definitions()
	if err != nil {
		return err
	}
	def, err := defs.Lookup("procore")
	if err != nil {
		return err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	conn := &connector.Connection{
		ID:           "procore-demo", // kept when the company is chosen below
		Definition:   def,
		ClientID:     clientID,
		ClientSecret: secret,
		RedirectURI:  "http://" + ln.Addr().String() + "/callback",
		BaseURL:      base,
		LoginURL:     base,
	}
	src, err := connector.NewSource(conn, st)
	if err != nil {
		ln.Close()
		return err
	}
	src.Margin = 500 * time.Millisecond // well inside the demo's short lifetime
	say("Built connection %s: definition %s, redirect URI %s", conn.Key(), def.Name, conn.RedirectURI)

	// 4. The authorization code flow, approving the consent page over HTTP
	// where a person would click Allow.
	client := &http.Client{Timeout: 10 * time.Second}
	// The approval runs beside authorize: the callback page waits for the
	// exchange, which waits for the callback.
	approved := make(chan error, 1)
	tok, err := authorize(ctx, src.Flow(), ln, "/callback", func(authURL string) {
		say("Authorization URL (state and PKCE S256 challenge): %s", redactQuery(authURL, "state", "code_challenge"))
		go func() { approved <- approve(ctx, client, authURL) }()
	}, src.Store, nil)
	if err != nil {
		select {
		case approveErr := <-approved:
			if approveErr != nil {
				return fmt.Errorf("approving the consent page: %w", approveErr)
			}
		default:
		}
		return err
	}
	if approveErr := <-approved; approveErr != nil {
		return fmt.Errorf("approving the consent page: %w", approveErr)
	}
	detail("approved the consent page (decision=allow); the emulator redirected to the callback listener")
	say("Exchanged the code for tokens and stored them sealed: access token expires in %s, refresh token %s",
		time.Until(tok.Expiry).Round(time.Second), fingerprint(tok.RefreshToken))

	// 5. API calls through the connection's client: the bearer token, the
	// Procore-Company-Id header, retries, rate limits and pagination come
	// from the definition.
	api, err := connector.NewAPI(conn, st, &connector.APIOptions{Source: src})
	if err != nil {
		return err
	}
	var me struct{ Name string }
	if err := callJSON(ctx, api, "me", nil, &me); err != nil {
		return err
	}
	var companies []struct {
		ID   int64
		Name string
	}
	if err := callJSON(ctx, api, "list_companies", nil, &companies); err != nil {
		return err
	}
	if len(companies) == 0 {
		return errors.New("the user has no companies")
	}
	company := companies[0]
	say("Called me and list_companies: signed in as %s, %d companies; using %s (%d)", me.Name, len(companies), company.Name, company.ID)

	// The company becomes a field of the connection; ID keeps the token record.
	withCompany := *conn
	withCompany.Fields = map[string]string{"CompanyId": strconv.FormatInt(company.ID, 10)}
	if api, err = connector.NewAPI(&withCompany, st, &connector.APIOptions{Source: src}); err != nil {
		return err
	}
	pageAll := func() (int, connector.Progress, error) {
		var last connector.Progress
		n := 0
		for _, err := range api.CallItems(ctx, "list_projects", map[string]any{"status": "All"}, func(p connector.Progress) { last = p }) {
			if err != nil {
				return n, last, err
			}
			n++
		}
		return n, last, nil
	}
	n, pr, err := pageAll()
	if err != nil {
		return err
	}
	say("Paged through list_projects: %d projects in %d pages (Total header: %d)", n, pr.Pages, pr.Total)

	var project struct {
		ID   int64
		Name string
	}
	err = callJSON(ctx, api, "create_project", map[string]any{"project": map[string]any{"name": "Demo Tower", "project_number": "DEMO-1"}}, &project)
	if err != nil {
		return err
	}
	say("Called create_project: project %d %q (sent with an Idempotency-Token, so a retried POST creates it once)", project.ID, project.Name)

	// 6. Webhooks: a hook whose destination is a listener here, a trigger on
	// project creation, and one event delivered.
	events := make(chan string, 4)
	hookLn, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hookSrv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev struct {
			ResourceName string `json:"resource_name"`
			EventType    string `json:"event_type"`
			ResourceID   int64  `json:"resource_id"`
		}
		_ = json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&ev)
		select {
		case events <- fmt.Sprintf("%s %s %d", ev.ResourceName, ev.EventType, ev.ResourceID):
		default:
		}
	})}
	go func() { _ = hookSrv.Serve(hookLn) }()
	defer hookSrv.Close()
	var hook, trigger struct{ ID int64 }
	dest := "http://" + hookLn.Addr().String() + "/procore-events"
	if err := callJSON(ctx, api, "create_webhook_hook", map[string]any{"hook": map[string]any{"namespace": "connector-demo", "destination_url": dest}}, &hook); err != nil {
		return err
	}
	if err := callJSON(ctx, api, "create_webhook_trigger", map[string]any{"hook_id": hook.ID, "trigger": map[string]any{"resource_name": "Projects", "event_type": "create"}}, &trigger); err != nil {
		return err
	}
	say("Registered webhook hook %d -> %s with trigger %d (Projects create)", hook.ID, dest, trigger.ID)
	if err := callJSON(ctx, api, "create_project", map[string]any{"project": map[string]any{"name": "Demo Annex"}}, &project); err != nil {
		return err
	}
	select {
	case ev := <-events:
		detail("created project %d; the emulator delivered the event: %s", project.ID, ev)
	case <-time.After(5 * time.Second):
		return errors.New("no webhook event arrived within 5s of creating a project")
	case <-ctx.Done():
		return ctx.Err()
	}

	// 7. Expiry and refresh.
	before, err := st.Get(ctx, conn.Key())
	if err != nil {
		return err
	}
	wait := time.Until(before.Token.Expiry) + 200*time.Millisecond
	say("Waiting %s for the access token to expire", wait.Round(100*time.Millisecond))
	select {
	case <-time.After(wait):
	case <-ctx.Done():
		return ctx.Err()
	}
	n, pr, err = pageAll()
	if err != nil {
		return err
	}
	after, err := st.Get(ctx, conn.Key())
	if err != nil {
		return err
	}
	if after.Token.RefreshToken == before.Token.RefreshToken {
		return errors.New("the refresh did not store a rotated refresh token")
	}
	say("Paged through list_projects again: %d projects in %d pages; the expired token was refreshed first, refresh token rotated %s -> %s and persisted before use",
		n, pr.Pages, fingerprint(before.Token.RefreshToken), fingerprint(after.Token.RefreshToken))

	stats := emu.Stats()
	say("Emulator saw %d code exchange, %d refresh, %d API requests, %d webhook delivery, %d grants revoked for reuse",
		stats.CodeExchanges, stats.Refreshes, stats.APIRequests, stats.WebhookDeliveries, stats.GrantRevocations)
	fmt.Fprintln(a.stdout, "Done: no secret was printed; the store and its key are deleted.")
	return nil
}

// callJSON runs an action and decodes its answer into v.
func callJSON(ctx context.Context, api *connector.API, action string, input map[string]any, v any) error {
	resp, err := api.Call(ctx, action, input)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(v); err != nil {
		return fmt.Errorf("%s: decoding the answer: %w", action, err)
	}
	return nil
}

// redactQuery replaces the values of the named query parameters with "…".
func redactQuery(raw string, names ...string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparseable URL>"
	}
	q := u.Query()
	for _, n := range names {
		if q.Has(n) {
			q.Set(n, "...")
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

var (
	formAction  = regexp.MustCompile(`(?i)<form[^>]*\baction="([^"]*)"`)
	hiddenInput = regexp.MustCompile(`(?i)<input[^>]*type="hidden"[^>]*>`)
	attrName    = regexp.MustCompile(`\bname="([^"]*)"`)
	attrValue   = regexp.MustCompile(`\bvalue="([^"]*)"`)
)

// approve plays the user: it loads the consent page, posts decision=allow
// with the form's hidden fields, and follows the redirect to the callback.
func approve(ctx context.Context, client *http.Client, authURL string) error {
	return decide(ctx, client, authURL, "allow")
}

// decide answers the emulator's consent page with decision (allow or deny)
// and follows the redirect to the callback.
func decide(ctx context.Context, client *http.Client, authURL, decision string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, authURL, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	page, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the consent page answered HTTP %d", resp.StatusCode)
	}
	m := formAction.FindSubmatch(page)
	if m == nil {
		return errors.New("the consent page has no form")
	}
	action, err := resp.Request.URL.Parse(html.UnescapeString(string(m[1])))
	if err != nil {
		return err
	}
	form := url.Values{"decision": {decision}}
	for _, in := range hiddenInput.FindAll(page, -1) {
		n, v := attrName.FindSubmatch(in), attrValue.FindSubmatch(in)
		if n != nil && v != nil {
			form.Set(html.UnescapeString(string(n[1])), html.UnescapeString(string(v[1])))
		}
	}
	post, err := http.NewRequestWithContext(ctx, http.MethodPost, action.String(), strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	post.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err = client.Do(post)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("after approving, the callback answered HTTP %d", resp.StatusCode)
	}
	return nil
}
