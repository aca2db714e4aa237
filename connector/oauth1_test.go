package connector_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/definitions"
	"github.com/connector-engine/connector/internal/oauth1server"
)

func oauth1Definition(t *testing.T, base, auth string) *definitions.Definition {
	t.Helper()
	src := `name: oauth1-test
title: OAuth 1.0a test server
base_url: ` + base + `/1
fields:
  ConsumerKey: {required: true}
  ConsumerSecret: {secret: true}
  PrivateKey: {secret: true}
  TokenId: {}
  TokenSecret: {secret: true}
  AccountId: {}
auth:
  scheme: oauth1
  oauth1:
` + auth
	set, err := definitions.Parse(nil, definitions.File{Path: "oauth1.yaml", Data: []byte(src)})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := set.Get("oauth1-test")
	return d
}

func call(t *testing.T, api *connector.API, method, path, contentType, body string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, path, strings.NewReader(body))
	if body == "" {
		req.Body = http.NoBody
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := api.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Two-legged, as NetSuite's token-based authentication: HMAC-SHA256 with
// the account id as realm; the server verifies every signature with its
// own implementation, refuses reused nonces, and sees a form body signed.
// The first call draws a 503, and its retry is signed anew.
func TestOAuth1TwoLeggedHMACSHA256(t *testing.T) {
	const consumerSecret, tokenSecret = "consumer-S3CRET", "token-S3CRET"
	srv := oauth1server.Start(t, "ck-1", consumerSecret)
	srv.Fixed["tok-1"] = tokenSecret
	srv.Realm = "1234567_SB1"
	srv.FailFirst = true
	def := oauth1Definition(t, srv.URL, `    signature_method: HMAC-SHA256
    consumer_key: ${ConsumerKey}
    consumer_secret: ${ConsumerSecret}
    token: ${TokenId}
    token_secret: ${TokenSecret}
    realm: ${AccountId}
`)
	conn := &connector.Connection{Definition: def, Fields: map[string]string{"ConsumerKey": "ck-1", "ConsumerSecret": consumerSecret,
		"TokenId": "tok-1", "TokenSecret": tokenSecret, "AccountId": "1234567_SB1"}}
	api, err := connector.NewAPI(conn, store.NewMemory(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := call(t, api, "GET", "/members/me?fields=id,name&x=a%20b", "", ""); code != 200 {
		t.Fatalf("GET: %d %s", code, body)
	}
	if code, body := call(t, api, "POST", "/members/me?q=1", "application/x-www-form-urlencoded", "name=A+b%2Bc&empty="); code != 200 {
		t.Fatalf("form POST: %d %s", code, body)
	}
	if srv.Calls != 2 || srv.LastBody != "name=A+b%2Bc&empty=" {
		t.Errorf("calls %d, last body %q", srv.Calls, srv.LastBody)
	}

	// A wrong token secret is refused by the server, and the 401 is the answer.
	conn.Fields["TokenSecret"] = "not-the-secret"
	api, err = connector.NewAPI(conn, store.NewMemory(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := call(t, api, "GET", "/members/me", "", ""); code != 401 || !strings.Contains(body, "invalid signature") {
		t.Errorf("a wrong secret: %d %s", code, body)
	}
}

// RSA-SHA1 with the private key from a field (a ${file:} PEM in a
// connection file), consumer key only.
func TestOAuth1RSASHA1(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	srv := oauth1server.Start(t, "ck-rsa", "")
	srv.PublicKey = &key.PublicKey
	def := oauth1Definition(t, srv.URL, `    signature_method: RSA-SHA1
    consumer_key: ${ConsumerKey}
    private_key: ${PrivateKey}
`)
	conn := &connector.Connection{Definition: def, Fields: map[string]string{"ConsumerKey": "ck-rsa", "PrivateKey": pemKey}}
	api, err := connector.NewAPI(conn, store.NewMemory(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := call(t, api, "GET", "/members/me", "", ""); code != 200 {
		t.Fatalf("GET: %d %s", code, body)
	}
	// A key that is not PEM is refused when the API is built, without
	// repeating it.
	conn.Fields["PrivateKey"] = "not-a-pem-SECRETVALUE"
	_, err = connector.NewAPI(conn, store.NewMemory(), nil)
	if err == nil || !strings.Contains(err.Error(), "auth.oauth1.private_key: the private key is not PEM") || strings.Contains(err.Error(), "SECRETVALUE") {
		t.Errorf("bad key: %v", err)
	}
}

// Three-legged, as Trello: temporary credentials with the callback, the
// user's approval, token credentials for the verifier; stored, then every
// call signed with them. A callback naming another request token is
// refused.
func TestOAuth1ThreeLegged(t *testing.T) {
	const consumerSecret = "trello-consumer-SECRET"
	srv := oauth1server.Start(t, "trello-key", consumerSecret)
	def := oauth1Definition(t, srv.URL, `    consumer_key: ${ConsumerKey}
    consumer_secret: ${ConsumerSecret}
    request_token_uri: ${BaseUrl}/OAuthGetRequestToken
    authorize_uri: ${BaseUrl}/OAuthAuthorizeToken?name=engine&scope=read&expiration=never
    access_token_uri: ${BaseUrl}/OAuthGetAccessToken
`)
	conn := &connector.Connection{Definition: def, RedirectURI: redirectURI,
		Fields: map[string]string{"ConsumerKey": "trello-key", "ConsumerSecret": consumerSecret}}
	st := store.NewMemory()
	src, err := connector.NewSource(conn, st)
	if err != nil {
		t.Fatal(err)
	}
	api, err := connector.NewAPI(conn, st, &connector.APIOptions{Source: src})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// Not connected yet: the call is not sent, and the error says what to do.
	_, err = api.Client().Get("/members/me")
	var nr *connector.NeedsReauthError
	if !errors.As(err, &nr) {
		t.Fatalf("before connecting: %v", err)
	}

	flow := src.OAuth1()
	attempt, err := flow.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(attempt.URL, "expiration=never") || !strings.Contains(attempt.URL, "oauth_token=") {
		t.Errorf("authorize URL %s", attempt.URL)
	}
	cb := approve(t, attempt.URL)
	forged := url.Values{"oauth_token": {"someone-elses"}, "oauth_verifier": cb["oauth_verifier"]}
	other, err := flow.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := flow.Exchange(ctx, other, forged); !errors.Is(err, connector.ErrStateMismatch) {
		t.Errorf("a forged callback: %v", err)
	}
	tok, err := flow.Exchange(ctx, attempt, cb)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := flow.Exchange(ctx, attempt, cb); !errors.Is(err, connector.ErrStateMismatch) {
		t.Errorf("an attempt used twice: %v", err)
	}
	if err := src.Store(ctx, tok); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if code, body := call(t, api, "GET", "/members/me", "", ""); code != 200 || !strings.Contains(body, tok.AccessToken) {
			t.Fatalf("GET: %d %s", code, body)
		}
	}
	// Another process reads the token credentials from the store.
	api2, err := connector.NewAPI(conn, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := call(t, api2, "GET", "/members/me", "", ""); code != 200 {
		t.Fatalf("second process: %d %s", code, body)
	}
	for _, s := range []string{fmt.Sprintf("%v %+v %#v", tok, tok, tok), fmt.Sprintf("%v %+v %#v", flow, flow, attempt), fmt.Sprint(src)} {
		if strings.Contains(s, tok.Secret) || strings.Contains(s, consumerSecret) || strings.Contains(s, tok.AccessToken) {
			t.Errorf("a secret printed: %s", s)
		}
	}
}

// examples/netsuite.yaml signs as NetSuite's TBA documentation says
// (HMAC-SHA256, the account id as realm), here against the loopback server.
func TestNetSuiteExampleSigns(t *testing.T) {
	srv := oauth1server.Start(t, "ns-consumer", "ns-consumer-secret")
	srv.Fixed["ns-token"] = "ns-token-secret"
	srv.Realm = "1234567_SB1"
	set, err := definitions.Load("../examples/netsuite.yaml")
	if err != nil {
		t.Fatal(err)
	}
	def, _ := set.Get("netsuite")
	conn := &connector.Connection{Definition: def, BaseURL: srv.URL + "/1", Fields: map[string]string{
		"AccountHost": "1234567-sb1", "AccountId": "1234567_SB1", "ConsumerKey": "ns-consumer", "ConsumerSecret": "ns-consumer-secret",
		"TokenId": "ns-token", "TokenSecret": "ns-token-secret"}}
	api, err := connector.NewAPI(conn, store.NewMemory(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := call(t, api, "GET", "/members/me?limit=5", "", ""); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
}
