package main

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/connector-engine/connector/internal/oauth1server"
)

// connector connect runs three-legged OAuth 1.0a as Trello does against a
// loopback provider that verifies every signature: temporary credentials
// with the redirect URI as oauth_callback, the approval (here a GET of the
// printed URL, which the provider redirects to the callback with
// oauth_token and oauth_verifier), the token credentials, stored; then
// request signs with them. A callback naming another oauth_token is
// ignored, and the attempt survives it. Nothing printed holds the consumer
// secret.
func TestConnectOAuth1(t *testing.T) {
	const consumerSecret = "trello-consumer-SECRET-9"
	srv := oauth1server.Start(t, "trello-key", consumerSecret)
	dir := t.TempDir()
	writeFile(t, dir, "trello-test.yaml", `name: trello-test
title: Trello-like
base_url: `+srv.URL+`/1
fields:
  ApiKey: {required: true}
  OAuthSecret: {secret: true, required: true}
auth:
  scheme: oauth1
  oauth1:
    consumer_key: ${ApiKey}
    consumer_secret: ${OAuthSecret}
    request_token_uri: ${BaseUrl}/OAuthGetRequestToken
    authorize_uri: ${BaseUrl}/OAuthAuthorizeToken?name=engine&scope=read&expiration=never
    access_token_uri: ${BaseUrl}/OAuthGetAccessToken
`)
	redirect := "http://" + freeAddr(t) + "/callback"
	conn := writeFile(t, dir, "conn.yaml", "definition: trello-test.yaml\nredirect_uri: "+redirect+"\nfields:\n  ApiKey: trello-key\n  OAuthSecret: "+consumerSecret+"\n")
	flags := []string{"--connection", conn, "--store", filepath.Join(dir, "store.json"), "--key-file", filepath.Join(dir, "secret.key")}

	// Not connected: the API call says to connect.
	code, _, errOut := runCLI(t, append([]string{"request", "GET", "/members/me"}, flags...)...)
	if code == 0 || !strings.Contains(errOut, "connect") {
		t.Fatalf("before connect: exit %d: %s", code, errOut)
	}

	pr, pw := io.Pipe()
	var errb bytes.Buffer
	done := make(chan int, 1)
	go func() {
		code := run(append([]string{"connect", "--no-browser", "--timeout", "1m"}, flags...), pw, &errb)
		pw.Close()
		done <- code
	}()
	lines := bufio.NewScanner(pr)
	if !lines.Scan() {
		t.Fatalf("connect printed no URL; stderr: %s", errb.String())
	}
	authURL := lines.Text()
	if !strings.HasPrefix(authURL, srv.URL+"/1/OAuthAuthorizeToken?") || !strings.Contains(authURL, "oauth_token=") || !strings.Contains(authURL, "expiration=never") {
		t.Fatalf("first stdout line is %q, want the authorization URL", authURL)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	// A stray callback does not spend the attempt.
	resp, err := client.Get(redirect + "?oauth_token=someone-elses&oauth_verifier=x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a stray callback: %d", resp.StatusCode)
	}
	resp, err = client.Get(authURL) // the provider approves and redirects to the callback
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "stored") {
		t.Errorf("callback page %d: %s", resp.StatusCode, page)
	}
	var rest strings.Builder
	for lines.Scan() {
		rest.WriteString(lines.Text() + "\n")
	}
	if code := <-done; code != 0 {
		t.Fatalf("connect: exit %d: %s", code, errb.String())
	}
	if !strings.HasPrefix(rest.String(), "connected ") {
		t.Errorf("connect printed %q", rest.String())
	}

	code, out, errOut := runCLI(t, append([]string{"request", "GET", "/members/me", "-v"}, flags...)...)
	if code != 0 {
		t.Fatalf("request after connect: exit %d: %s", code, errOut)
	}
	if srv.Calls != 1 {
		t.Errorf("the API accepted %d calls, want 1", srv.Calls)
	}
	for _, s := range []string{authURL + rest.String() + errb.String(), out + errOut} {
		if strings.Contains(s, consumerSecret) {
			t.Errorf("the consumer secret is printed:\n%s", s)
		}
	}
}
