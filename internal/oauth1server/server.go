package oauth1server

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/oauth1"
)

// Server is the loopback provider. Its endpoints, Trello's shapes:
//
//	POST /1/OAuthGetRequestToken   temporary credentials (oauth_callback)
//	GET  /1/OAuthAuthorizeToken    the user approves at once: redirect to the callback with oauth_token and oauth_verifier
//	POST /1/OAuthGetAccessToken    token credentials (oauth_verifier, signed with the temporary secret)
//	ANY  /1/members/me             the API: a request signed with token credentials (or, with Fixed, the given ones)
type Server struct {
	*httptest.Server
	ConsumerKey    string
	ConsumerSecret string
	PublicKey      *rsa.PublicKey // RSA-SHA1 clients
	// Fixed are token credentials accepted without the flow (two-legged).
	Fixed map[string]string
	// Realm, when set, must be the realm of every API request.
	Realm string
	// FailFirst makes the API answer 503 to the first request, to show
	// that a retried request is signed anew.
	FailFirst bool

	mu       sync.Mutex
	temp     map[string]string // temporary token -> secret
	verifier map[string]string // temporary token -> verifier
	tokens   map[string]string // token -> secret
	nonces   map[string]bool
	failed   bool
	Calls    int    // API calls accepted
	LastBody string // the last API request's body
}

// Start runs the server until the test ends.
func Start(t testing.TB, consumerKey, consumerSecret string) *Server {
	s := &Server{ConsumerKey: consumerKey, ConsumerSecret: consumerSecret, Fixed: map[string]string{},
		temp: map[string]string{}, verifier: map[string]string{}, tokens: map[string]string{}, nonces: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /1/OAuthGetRequestToken", s.requestToken)
	mux.HandleFunc("GET /1/OAuthAuthorizeToken", s.authorize)
	mux.HandleFunc("POST /1/OAuthGetAccessToken", s.accessToken)
	mux.HandleFunc("/1/members/me", s.api)
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func random() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// check verifies r's signature with the token secret the server knows for
// its oauth_token (tokens, or temp for the access token request), the
// nonce's uniqueness and the timestamp's freshness (RFC 5849 3.3).
func (s *Server) check(w http.ResponseWriter, r *http.Request, secrets map[string]string) (map[string]string, []byte, bool) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	ps, err := oauth1.ParseHeader(r.Header.Get("Authorization"))
	if err != nil {
		http.Error(w, "no OAuth header: "+err.Error(), http.StatusUnauthorized)
		return nil, nil, false
	}
	p := map[string]string{}
	for _, kv := range ps {
		p[kv.Name] = kv.Value
	}
	if p["oauth_consumer_key"] != s.ConsumerKey {
		http.Error(w, "unknown consumer", http.StatusUnauthorized)
		return nil, nil, false
	}
	ts, err := strconv.ParseInt(p["oauth_timestamp"], 10, 64)
	if err != nil || time.Since(time.Unix(ts, 0)).Abs() > 5*time.Minute {
		http.Error(w, "stale timestamp", http.StatusUnauthorized)
		return nil, nil, false
	}
	s.mu.Lock()
	tokenSecret, known := secrets[p["oauth_token"]]
	if !known && secrets != nil && p["oauth_token"] != "" {
		s.mu.Unlock()
		http.Error(w, "unknown token", http.StatusUnauthorized)
		return nil, nil, false
	}
	key := p["oauth_nonce"] + "\x00" + p["oauth_timestamp"]
	replay := s.nonces[key]
	s.nonces[key] = true
	s.mu.Unlock()
	if replay || p["oauth_nonce"] == "" {
		http.Error(w, "nonce reused", http.StatusUnauthorized)
		return nil, nil, false
	}
	if err := Verify(r, body, s.ConsumerSecret, tokenSecret, s.PublicKey); err != nil {
		http.Error(w, "invalid signature: "+err.Error(), http.StatusUnauthorized)
		return nil, nil, false
	}
	return p, body, true
}

func (s *Server) requestToken(w http.ResponseWriter, r *http.Request) {
	p, _, ok := s.check(w, r, nil)
	if !ok {
		return
	}
	if p["oauth_callback"] == "" {
		http.Error(w, "oauth_callback is required", http.StatusBadRequest)
		return
	}
	tok, sec := random(), random()
	s.mu.Lock()
	s.temp[tok] = sec
	s.verifier[tok+"\x00cb"] = p["oauth_callback"]
	s.mu.Unlock()
	fmt.Fprintf(w, "oauth_token=%s&oauth_token_secret=%s&oauth_callback_confirmed=true", tok, sec)
}

func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	tok := r.URL.Query().Get("oauth_token")
	s.mu.Lock()
	_, ok := s.temp[tok]
	cb := s.verifier[tok+"\x00cb"]
	v := random()
	s.verifier[tok] = v
	s.mu.Unlock()
	if !ok {
		http.Error(w, "unknown request token", http.StatusBadRequest)
		return
	}
	u, _ := url.Parse(cb)
	q := u.Query()
	q.Set("oauth_token", tok)
	q.Set("oauth_verifier", v)
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

func (s *Server) accessToken(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	temp := make(map[string]string, len(s.temp))
	for k, v := range s.temp {
		temp[k] = v
	}
	s.mu.Unlock()
	p, _, ok := s.check(w, r, temp)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	want := s.verifier[p["oauth_token"]]
	if want == "" || p["oauth_verifier"] != want {
		http.Error(w, "wrong verifier", http.StatusUnauthorized)
		return
	}
	delete(s.temp, p["oauth_token"]) // temporary credentials are single use
	delete(s.verifier, p["oauth_token"])
	tok, sec := random(), random()
	s.tokens[tok] = sec
	fmt.Fprintf(w, "oauth_token=%s&oauth_token_secret=%s", tok, sec)
}

func (s *Server) api(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.FailFirst && !s.failed {
		s.failed = true
		s.mu.Unlock()
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	known := make(map[string]string, len(s.tokens)+len(s.Fixed))
	for k, v := range s.tokens {
		known[k] = v
	}
	for k, v := range s.Fixed {
		known[k] = v
	}
	s.mu.Unlock()
	if s.Realm != "" {
		ps, _ := oauth1.ParseHeader(r.Header.Get("Authorization"))
		if len(ps) == 0 || ps[0].Name != "realm" || ps[0].Value != s.Realm {
			http.Error(w, "wrong realm", http.StatusUnauthorized)
			return
		}
	}
	p, body, ok := s.check(w, r, known)
	if !ok {
		return
	}
	s.mu.Lock()
	s.Calls++
	s.LastBody = string(body)
	s.mu.Unlock()
	fmt.Fprintf(w, `{"id":"member-1","token":%q}`, p["oauth_token"])
}
