package connector_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/definitions"
)

// tenantHosts is a provider on per-tenant hosts (Zendesk, Okta, Shopify):
// one TLS server on 127.0.0.1 answering for every *.localhost name, which a
// dialer sends to it; it records the Host each request named.
type tenantHosts struct {
	*httptest.Server
	mu    sync.Mutex
	hosts []string
}

func startTenantHosts(t *testing.T) *tenantHosts {
	s := &tenantHosts{}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hosts = append(s.hosts, r.URL.Path+" "+r.Host)
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/oauth/token":
			fmt.Fprint(w, `{"access_token":"tenant-token","token_type":"bearer","expires_in":3600}`)
		default:
			fmt.Fprintf(w, `{"host":%q,"next":"https://other.api.localhost:%s/steal"}`, r.Host, s.port())
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *tenantHosts) port() string {
	_, p, _ := net.SplitHostPort(s.Listener.Addr().String())
	return p
}

// client dials the server whatever *.localhost name a URL gives, and
// verifies its certificate (issued for example.com).
func (s *tenantHosts) client() *http.Transport {
	tr := s.Client().Transport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, _ := net.SplitHostPort(addr)
		if !strings.HasSuffix(host, ".localhost") {
			return nil, fmt.Errorf("test dialer: %s is not a .localhost name", addr)
		}
		return (&net.Dialer{}).DialContext(ctx, network, s.Listener.Addr().String())
	}
	tr.TLSClientConfig = &tls.Config{RootCAs: tr.TLSClientConfig.RootCAs, ServerName: "example.com"}
	return tr
}

func TestHostFieldFeedsAPIAndLoginHosts(t *testing.T) {
	s := startTenantHosts(t)
	src := `name: tenant-hosts
title: per-tenant hosts
environments:
  production:
    base_url: https://${Subdomain}.api.localhost:` + s.port() + `/api/v2
    login_url: https://${Subdomain}.login.localhost:` + s.port() + `
fields:
  Subdomain: {type: host_label, required: true}
auth:
  scheme: oauth_client
  oauth:
    version: V2
    token_request_uri: ${LoginUrl}/oauth/token
    token_request: {client_auth: basic}
`
	set, err := definitions.Parse(nil, definitions.File{Path: "tenant.yaml", Data: []byte(src)})
	if err != nil {
		t.Fatal(err)
	}
	def, _ := set.Get("tenant-hosts")

	// A value that would move the host is refused before anything is sent.
	for _, bad := range []string{"evil.example/x?", "acme.evil", "acme@evil", "acme:1", "..", ""} {
		c := &connector.Connection{Definition: def, ClientID: "id", ClientSecret: "secret", Fields: map[string]string{"Subdomain": bad}}
		if err := c.Validate(); err == nil {
			t.Errorf("Subdomain %q was accepted", bad)
		}
	}

	// An internationalised label is sent as punycode, in both hosts.
	c := &connector.Connection{Definition: def, ClientID: "id", ClientSecret: "secret", Fields: map[string]string{"Subdomain": "Bücher"}}
	src2, err := connector.NewSource(c, store.NewMemory())
	if err != nil {
		t.Fatal(err)
	}
	src2.Flow().HTTPClient = &http.Client{Transport: s.client()}
	api, err := connector.NewAPI(c, store.NewMemory(), &connector.APIOptions{Base: s.client(), Source: src2})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := api.Do(context.Background(), connector.Request{Path: "/me"})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := []string{
		"/oauth/token xn--bcher-kva.login.localhost:" + s.port(),
		"/api/v2/me xn--bcher-kva.api.localhost:" + s.port(),
	}
	if fmt.Sprint(s.hosts) != fmt.Sprint(want) {
		t.Fatalf("requests %q, want %q", s.hosts, want)
	}

	// The origin guard is the expanded host: another tenant's host is
	// another origin, for a request and for a next page alike.
	_, err = api.Do(context.Background(), connector.Request{Path: "https://other.api.localhost:" + s.port() + "/api/v2/me"})
	var he *connector.HostError
	if !errors.As(err, &he) || !strings.Contains(he.API, "xn--bcher-kva.api.localhost") {
		t.Fatalf("err = %v", err)
	}
	for _, err := range api.Items(context.Background(), connector.Request{Path: "/list"}, &definitions.Pagination{Style: definitions.PageNextURL, NextPath: "next"}, nil) {
		if err != nil && !errors.As(err, &he) {
			t.Fatalf("err = %v", err)
		}
	}
	if n := len(s.hosts); n != 3 {
		t.Fatalf("%d requests reached the server, want 3 (the other tenant's host none): %q", n, s.hosts)
	}
}
