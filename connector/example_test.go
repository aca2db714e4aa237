package connector_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/connector/emulator"
	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/definitions"
)

// startEmulator runs a Procore emulator on loopback with one application
// that may use both grants and whose consent is approved automatically.
func startEmulator(ctx context.Context) (*emulator.Server, string, error) {
	srv := emulator.New(emulator.Config{
		Clients:     []emulator.Client{{ID: "my-app", Secret: "my-app-secret", ServiceAccount: true}},
		AutoApprove: true, // no consent page: the authorize URL redirects with a code
	})
	base, err := srv.Start(ctx, "127.0.0.1:0")
	return srv, base, err
}

// The authorization code flow as an embedder writes it: send the user to
// AuthCodeURL, take the provider's redirect to your callback, exchange and
// store the token in one call, then call the API. Here the "browser" is an
// HTTP client that stops at the redirect, since the emulator approves
// consent itself.
func ExampleSource_ExchangeAndStore() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, base, err := startEmulator(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()

	def, _ := definitions.Builtin().Lookup("procore")
	conn := &connector.Connection{
		Definition: def, ClientID: "my-app", ClientSecret: "my-app-secret",
		RedirectURI: "http://127.0.0.1:8765/callback", // your callback handler
		Fields:      map[string]string{"CompanyId": strconv.FormatInt(emulator.DemoCompanyID, 10)},
		BaseURL:     base, LoginURL: base, // the emulator serves both hosts
	}
	st := store.NewMemory() // or filestore.Open, pgstore.Open
	src, err := connector.NewSource(conn, st)
	if err != nil {
		fmt.Println(err)
		return
	}

	// 1. Send the user to attempt.URL; keep attempt until the callback.
	attempt, err := src.Flow().AuthCodeURL()
	if err != nil {
		fmt.Println(err)
		return
	}

	// (The user approves; the provider redirects to RedirectURI.)
	browser := &http.Client{Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := browser.Get(attempt.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	callback, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		fmt.Println(err)
		return
	}

	// 2. In the callback handler: check the state, exchange the code, store.
	if _, err := src.ExchangeAndStore(ctx, attempt, callback.Query()); err != nil {
		fmt.Println(err)
		return
	}

	// 3. Call the API through the same source.
	api, err := connector.NewAPI(conn, st, &connector.APIOptions{Source: src})
	if err != nil {
		fmt.Println(err)
		return
	}
	resp, err = api.Call(ctx, "me", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	var me struct{ Name string }
	_ = json.NewDecoder(resp.Body).Decode(&me)
	fmt.Println("signed in as", me.Name)
	// Output: signed in as Jim Builder
}

// Client credentials need no user and no Exchange: the source fetches a
// token whenever it has no valid one.
func ExampleSource_TokenContext_clientCredentials() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, base, err := startEmulator(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()

	def, _ := definitions.Builtin().Lookup("procore-client-credentials")
	conn := &connector.Connection{
		Definition: def, ClientID: "my-app", ClientSecret: "my-app-secret",
		Fields:  map[string]string{"CompanyId": strconv.FormatInt(emulator.DemoCompanyID, 10)},
		BaseURL: base, LoginURL: base,
	}
	st := store.NewMemory()
	src, err := connector.NewSource(conn, st)
	if err != nil {
		fmt.Println(err)
		return
	}
	tok, err := src.TokenContext(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("token type:", tok.Type(), "refresh token:", tok.RefreshToken != "")

	api, err := connector.NewAPI(conn, st, &connector.APIOptions{Source: src})
	if err != nil {
		fmt.Println(err)
		return
	}
	for item, err := range api.CallItems(ctx, "list_companies", nil, nil) {
		if err != nil {
			fmt.Println(err)
			return
		}
		var c struct{ Name string }
		_ = json.Unmarshal(item, &c)
		fmt.Println("company:", c.Name)
	}
	// Output:
	// token type: Bearer refresh token: false
	// company: Builder Bros Construction
}

// CallItems follows the definition's pagination across every page, with one
// page in memory at a time; progress reports each page.
func ExampleAPI_CallItems() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, base, err := startEmulator(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()

	def, _ := definitions.Builtin().Lookup("procore-client-credentials")
	conn := &connector.Connection{
		Definition: def, ClientID: "my-app", ClientSecret: "my-app-secret",
		Fields:  map[string]string{"CompanyId": strconv.FormatInt(emulator.DemoCompanyID, 10)},
		BaseURL: base, LoginURL: base,
	}
	api, err := connector.NewAPI(conn, store.NewMemory(), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	var last connector.Progress
	n := 0
	for _, err := range api.CallItems(ctx, "list_projects", nil, func(p connector.Progress) { last = p }) {
		if err != nil {
			fmt.Println(err)
			return
		}
		n++
	}
	fmt.Printf("%d projects; the API reported %d, in %d pages\n", n, last.Total, last.Pages)
	// Output: 250 projects; the API reported 250, in 3 pages
}

// A platform that keeps definitions in a database parses them from bytes,
// on top of the built-in ones (which they may extend), and gets the same
// positioned findings as from files.
func Example_definitionFromBytes() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, base, err := startEmulator(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()

	row := []byte(`name: tenant-42-procore
extends: procore-client-credentials
title: Procore for tenant 42
actions:
  project_names:
    path: /rest/v1.0/projects
    query: {company_id: "${CompanyId}", per_page: "2"}
`)
	set, err := definitions.Parse(definitions.Builtin(), definitions.File{Path: "db:definitions/42", Data: row})
	if err != nil {
		fmt.Println(err) // every finding, as db:definitions/42:line:column: field: message
		return
	}
	def, err := set.Lookup("tenant-42-procore")
	if err != nil {
		fmt.Println(err)
		return
	}
	conn := &connector.Connection{
		Definition: def, ClientID: "my-app", ClientSecret: "my-app-secret",
		Fields:  map[string]string{"CompanyId": strconv.FormatInt(emulator.DemoCompanyID, 10)},
		BaseURL: base, LoginURL: base,
	}
	api, err := connector.NewAPI(conn, store.NewMemory(), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	for item, err := range api.CallItems(ctx, "project_names", nil, nil) {
		if err != nil {
			fmt.Println(err)
			return
		}
		var p struct{ Name string }
		_ = json.Unmarshal(item, &p)
		fmt.Println(p.Name)
	}

	// A bad row is refused with its position.
	_, err = definitions.Parse(definitions.Builtin(), definitions.File{Path: "db:definitions/43", Data: []byte("name: x\nextends: procore\nbase_ur1: https://api.example\n")})
	fmt.Println(err)
	// Output:
	// Riverside Medical Center
	// Harbor View Medical Center
	// db:definitions/43:3:1: base_ur1: unknown key "base_ur1"; did you mean "base_url"?
}
