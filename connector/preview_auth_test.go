package connector_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/definitions"
	"github.com/connector-engine/connector/internal/oauth1server"
)

// recorder writes each request it passes on as Preview.String does, with
// the headers named.
type recorder struct {
	next    http.RoundTripper
	headers []string
	mu      sync.Mutex
	got     []string
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	var b strings.Builder
	b.WriteString(req.Method + " " + req.URL.String() + "\n")
	for _, h := range r.headers {
		if v := req.Header.Get(h); v != "" {
			b.WriteString(h + ": " + v + "\n")
		}
	}
	if req.GetBody != nil {
		if body, err := req.GetBody(); err == nil {
			data, _ := io.ReadAll(body)
			if len(data) > 0 {
				b.WriteString("\n" + string(data) + "\n")
			}
		}
	}
	r.mu.Lock()
	r.got = append(r.got, b.String())
	r.mu.Unlock()
	return r.next.RoundTrip(req)
}

// TestPreviewOAuth1MatchesTheFlow holds render's OAuth 1.0a requests to
// what the three-legged flow sends the loopback provider (which checks every
// signature): the temporary credentials request with oauth_callback, the
// authorization URL, the token credentials request with the temporary token
// and the verifier. What exists only when a request is sent (nonce,
// timestamp, signature, the provider's temporary token and verifier) is
// replaced by the preview's stand-ins; redacted, no secret shows.
func TestPreviewOAuth1MatchesTheFlow(t *testing.T) {
	const consumerSecret = "consumer-SECRET-1"
	srv := oauth1server.Start(t, "ck-1", consumerSecret)
	def := oauth1Definition(t, srv.URL, `    consumer_key: ${ConsumerKey}
    consumer_secret: ${ConsumerSecret}
    realm: ${AccountId}
    request_token_uri: ${BaseUrl}/OAuthGetRequestToken
    authorize_uri: ${BaseUrl}/OAuthAuthorizeToken?name=engine&scope=read
    access_token_uri: ${BaseUrl}/OAuthGetAccessToken
`)
	fields := map[string]string{"ConsumerKey": "ck-1", "ConsumerSecret": consumerSecret, "AccountId": "acct 1"}
	conn := &connector.Connection{Definition: def, RedirectURI: redirectURI, Fields: fields}
	src, err := connector.NewSource(conn, store.NewMemory())
	if err != nil {
		t.Fatal(err)
	}
	flow := src.OAuth1()
	rec := &recorder{next: http.DefaultTransport, headers: []string{"Authorization"}}
	client := *flow.HTTPClient
	client.Transport = rec
	flow.HTTPClient = &client
	ctx := context.Background()
	attempt, err := flow.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cb := approve(t, attempt.URL)
	if _, err := flow.Exchange(ctx, attempt, cb); err != nil {
		t.Fatal(err)
	}
	temp, verifier := cb.Get("oauth_token"), cb.Get("oauth_verifier")
	standIns := strings.NewReplacer(temp, definitions.PreviewTemporaryToken, verifier, definitions.PreviewOAuthVerifier)
	generated := regexp.MustCompile(`oauth_(nonce|timestamp|signature)="[^"]*"`)
	normal := func(s string) string {
		return generated.ReplaceAllStringFunc(standIns.Replace(s), func(m string) string {
			switch {
			case strings.HasPrefix(m, "oauth_nonce"):
				return `oauth_nonce="` + definitions.PreviewNonce + `"`
			case strings.HasPrefix(m, "oauth_timestamp"):
				return `oauth_timestamp="` + definitions.PreviewTimestamp + `"`
			}
			return `oauth_signature="***"`
		})
	}
	sent := []string{normal(rec.got[0]), "GET " + standIns.Replace(attempt.URL) + "\n", normal(rec.got[1])}
	assign := map[string]string{"RedirectUri": redirectURI}
	for k, v := range fields {
		assign[k] = v
	}
	vals, err := def.Values("", assign)
	if err != nil {
		t.Fatal(err)
	}
	for i, key := range []string{"request_token_uri", "authorize_uri", "access_token_uri"} {
		p, err := def.Preview("", key, vals, true)
		if err != nil {
			t.Fatal(err)
		}
		if p.String() != sent[i] {
			t.Errorf("%s: render shows\n%s\nthe flow sent\n%s", key, p, sent[i])
		}
		red, err := def.Preview("", key, vals, false)
		if err != nil {
			t.Fatal(err)
		}
		if s := red.String(); strings.Contains(s, consumerSecret) || strings.Contains(s, definitions.PreviewTemporaryToken) || strings.Contains(s, definitions.PreviewOAuthVerifier) {
			t.Errorf("%s: the redacted preview shows a secret:\n%s", key, s)
		}
	}
}

// TestPreviewSessionMatchesTheLogin holds render's session login to the
// request SessionLogin sends, JSON and form bodies, with a login header;
// redacted, the password and the API key are ***.
func TestPreviewSessionMatchesTheLogin(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"token":"sess-1"}`)
	}))
	defer srv.Close()
	for _, enc := range []string{"json", "form"} {
		src := `name: sess
title: sess
base_url: ` + srv.URL + `
fields:
  User: {required: true}
  Password: {secret: true, required: true}
  ApiKey: {secret: true, required: true}
  Retries: {type: integer, default: "3"}
auth:
  scheme: session
  session:
    login_uri: ${BaseUrl}/login?lang=en
    encoding: ` + enc + `
    headers: {X-Api-Key: "${ApiKey}", X-Client: connector}
    body: {user: "${User}", password: "${Password}", retries: "${Retries}"}
    token_path: token
`
		set, err := definitions.Parse(nil, definitions.File{Path: "s.yaml", Data: []byte(src)})
		if err != nil {
			t.Fatal(err)
		}
		def, _ := set.Get("sess")
		fields := map[string]string{"User": "ada", "Password": "pw&=SECRET", "ApiKey": "key-SECRET"}
		conn := &connector.Connection{Definition: def, Fields: fields}
		s, err := connector.NewSource(conn, store.NewMemory())
		if err != nil {
			t.Fatal(err)
		}
		login := s.Session()
		rec := &recorder{next: http.DefaultTransport, headers: []string{"Accept", "Content-Type", "X-Api-Key", "X-Client"}}
		client := *login.HTTPClient
		client.Transport = rec
		login.HTTPClient = &client
		if _, err := login.Login(context.Background()); err != nil {
			t.Fatal(err)
		}
		vals, _ := def.Values("", fields)
		p, err := def.Preview("", "login_uri", vals, true)
		if err != nil {
			t.Fatal(err)
		}
		if len(rec.got) != 1 || p.String() != rec.got[0] {
			t.Errorf("%s: render shows\n%s\nthe login sent\n%v", enc, p, rec.got)
		}
		red, _ := def.Preview("", "login_uri", vals, false)
		if s := red.String(); strings.Contains(s, "SECRET") || !strings.Contains(s, "X-Api-Key: ***") || !strings.Contains(s, "ada") {
			t.Errorf("%s: the redacted preview:\n%s", enc, s)
		}
	}
}
