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
	var approveErr error
	tok, err := authorize(ctx, src.Flow(), ln, "/callback", func(authURL string) {
		say("Authorization URL (state and PKCE S256 challenge): %s", redactQuery(authURL, "state", "code_challenge"))
		approveErr = approve(ctx, client, authURL)
	})
	if approveErr != nil {
		return fmt.Errorf("approving the consent page: %w", approveErr)
	}
	if err != nil {
		return err
	}
	detail("approved the consent page (decision=allow); the emulator redirected to the callback listener")
	if err := src.Store(ctx, tok); err != nil {
		return err
	}
	say("Exchanged the code for tokens and stored them sealed: access token expires in %s, refresh token %s",
		time.Until(tok.Expiry).Round(time.Second), fingerprint(tok.RefreshToken))

	// 5. API calls.
	company, projects, total, err := listProjects(ctx, client, src, base)
	if err != nil {
		return err
	}
	say("GET /rest/v1.0/projects?company_id=%d: first page of %d projects out of %s", company, len(projects), total)
	for _, p := range projects[:min(3, len(projects))] {
		detail("- %s", p)
	}

	// 6. Expiry and refresh.
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
	t2, err := src.TokenContext(ctx)
	if err != nil {
		return err
	}
	after, err := st.Get(ctx, conn.Key())
	if err != nil {
		return err
	}
	if after.Token.RefreshToken == before.Token.RefreshToken || after.Token.AccessToken != t2.AccessToken {
		return errors.New("the refresh did not store a rotated refresh token")
	}
	say("TokenContext refreshed the expired token: refresh token rotated %s -> %s and persisted before use",
		fingerprint(before.Token.RefreshToken), fingerprint(after.Token.RefreshToken))

	company, projects, total, err = listProjects(ctx, client, src, base)
	if err != nil {
		return err
	}
	say("GET /rest/v1.0/projects?company_id=%d with the new token: first page of %d projects out of %s", company, len(projects), total)

	stats := emu.Stats()
	say("Emulator saw %d code exchange, %d refresh, %d API requests, %d grants revoked for reuse",
		stats.CodeExchanges, stats.Refreshes, stats.APIRequests, stats.GrantRevocations)
	fmt.Fprintln(a.stdout, "Done: no secret was printed; the store and its key are deleted.")
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
	form := url.Values{"decision": {"allow"}}
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

// listProjects calls the emulated Procore API the way an integration would:
// the first company, then its projects, with that company in Procore-Company-Id.
// It returns the company, the first page of project names and the total count.
func listProjects(ctx context.Context, client *http.Client, src *connector.Source, base string) (int64, []string, string, error) {
	var companies []struct {
		ID int64 `json:"id"`
	}
	if _, err := getJSON(ctx, client, src, base+"/rest/v1.0/companies", "", &companies); err != nil {
		return 0, nil, "", err
	}
	if len(companies) == 0 {
		return 0, nil, "", errors.New("the user has no companies")
	}
	id := companies[0].ID
	var projects []struct {
		Name string `json:"name"`
	}
	cid := strconv.FormatInt(id, 10)
	total, err := getJSON(ctx, client, src, base+"/rest/v1.0/projects?company_id="+cid, cid, &projects)
	if err != nil {
		return 0, nil, "", err
	}
	if total == "" {
		total = strconv.Itoa(len(projects))
	}
	names := make([]string, len(projects))
	for i, p := range projects {
		names[i] = p.Name
	}
	return id, names, total, nil
}

// getJSON GETs u with the connection's token and decodes the answer into v;
// it returns the response's Total header (Procore's count of all pages).
func getJSON(ctx context.Context, client *http.Client, src *connector.Source, u, company string, v any) (string, error) {
	t, err := src.TokenContext(ctx)
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", t.Type()+" "+t.AccessToken)
	if company != "" {
		req.Header.Set("Procore-Company-Id", company)
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: HTTP %d", req.URL.Path, resp.StatusCode)
	}
	return resp.Header.Get("Total"), json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(v)
}
