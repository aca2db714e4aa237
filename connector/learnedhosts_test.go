package connector_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/definitions"
)

// TestLearnedTokenHosts connects where the login host says, then refreshes,
// introspects and revokes on the host the token response named
// (Salesforce: the org's instance_url), and never on the login host.
func TestLearnedTokenHosts(t *testing.T) {
	var mu sync.Mutex
	var atInstance, atLogin []string // "path grant/token" of each request
	record := func(list *[]string, r *http.Request) {
		_ = r.ParseForm()
		mu.Lock()
		*list = append(*list, r.URL.Path+" "+r.PostForm.Get("grant_type")+r.PostForm.Get("token_type_hint"))
		mu.Unlock()
	}
	instance := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		record(&atInstance, r)
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/services/oauth2/token":
			if r.PostForm.Get("refresh_token") != "RT-1" || r.PostForm.Get("client_secret") != clientSecret {
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprint(w, `{"error":"invalid_grant"}`)
				return
			}
			fmt.Fprint(w, `{"access_token":"AT-2","token_type":"Bearer"}`)
		case "/services/oauth2/introspect":
			fmt.Fprint(w, `{"active":true}`)
		case "/services/oauth2/revoke":
			w.WriteHeader(http.StatusOK)
		default:
			http.NotFound(w, r)
		}
	}))
	defer instance.Close()
	login := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/services/oauth2/authorize":
			q := r.URL.Query()
			http.Redirect(w, r, q.Get("redirect_uri")+"?code=C1&state="+url.QueryEscape(q.Get("state")), http.StatusFound)
		default:
			record(&atLogin, r)
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "AT-1", "token_type": "Bearer", "refresh_token": "RT-1", "instance_url": instance.URL})
		}
	}))
	defer login.Close()

	src := fmt.Sprintf(`name: learned-hosts
title: Learned token hosts
base_url: ${InstanceUrl}/services/data/v60.0
environments:
  production: {login_url: %s}
fields:
  InstanceUrl:
    type: url
    pattern: "http://127\\.0\\.0\\.1:[0-9]+"
    learn: {from: token_response, path: instance_url}
auth:
  scheme: oauth
  oauth:
    version: V2
    initiate_uri: ${LoginUrl}/services/oauth2/authorize
    token_request_uri: ${LoginUrl}/services/oauth2/token
    refresh_uri: ${InstanceUrl}/services/oauth2/token
    introspection_uri: ${InstanceUrl}/services/oauth2/introspect
    revoke_uri: ${InstanceUrl}/services/oauth2/revoke
`, login.URL)
	set, err := definitions.Parse(nil, definitions.File{Path: "learned-hosts.yaml", Data: []byte(src)})
	if err != nil {
		t.Fatal(err)
	}
	if w := set.Warnings(); len(w) != 0 {
		t.Errorf("warnings %v; a patterned learned host draws none", w)
	}
	d, _ := set.Get("learned-hosts")
	st := store.NewMemory()
	conn := &connector.Connection{Definition: d, ClientID: clientID, ClientSecret: clientSecret, RedirectURI: redirectURI}
	s, err := connector.NewSource(conn, st)
	if err != nil {
		t.Fatal(err)
	}
	if err := connectLearning(t, s); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tok, err := s.Refresh(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken != "AT-2" || tok.Values["InstanceUrl"] != instance.URL {
		t.Errorf("refreshed token %q with values %v; want AT-2 and the instance kept", tok.AccessToken, len(tok.Values))
	}

	// An interrupted refresh is resolved by introspection at the instance.
	rec, err := st.Get(ctx, conn.Key())
	if err != nil {
		t.Fatal(err)
	}
	rec.RefreshStarted = time.Now()
	rec.Token.AccessToken = ""
	if _, err := st.Put(ctx, rec); err != nil {
		t.Fatal(err)
	}
	s2, err := connector.NewSource(conn, st)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Refresh(ctx); err != nil {
		t.Fatalf("refresh after an interrupted one: %v", err)
	}
	if err := s2.Revoke(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{
		"/services/oauth2/token refresh_token",
		"/services/oauth2/introspect refresh_token",
		"/services/oauth2/token refresh_token",
		"/services/oauth2/revoke refresh_token",
		"/services/oauth2/revoke access_token",
	}
	if strings.Join(atInstance, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests at the learned instance:\n%s\nwant:\n%s", strings.Join(atInstance, "\n"), strings.Join(want, "\n"))
	}
	if len(atLogin) != 1 || atLogin[0] != "/services/oauth2/token authorization_code" {
		t.Errorf("requests at the login host %v; want only the code exchange", atLogin)
	}
}
