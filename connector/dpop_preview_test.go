package connector_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/definitions"
)

// TestPreviewDPoP holds render's token requests for a dpop definition to
// what the flow sends: a DPoP header on the code exchange and on the
// refresh (signed with the key kept with the token, through
// Flow.WithDPoPKey). The flow's fresh proof is replaced by the preview's
// stand-in once it is seen to be a dpop+jwt.
func TestPreviewDPoP(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if isProof(r.Header.Get("DPoP")) {
			r.Header.Set("DPoP", definitions.PreviewDPoPProof)
		}
		mu.Lock()
		got = append(got, sentRequest(r, body, "Accept", "Content-Type", "Authorization", "DPoP"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"access_token":"a","refresh_token":"r2","token_type":"DPoP","expires_in":60}`)
	}))
	defer srv.Close()
	src := `name: preview
title: preview
base_url: ` + srv.URL + `
auth:
  scheme: oauth
  oauth:
    version: V2
    initiate_uri: ${BaseUrl}/authorize
    token_request_uri: ${BaseUrl}/token
    token_request: {client_auth: basic}
    dpop: {}
`
	set, err := definitions.Parse(nil, definitions.File{Path: "p.yaml", Data: []byte(src)})
	if err != nil {
		t.Fatal(err)
	}
	def, _ := set.Get("preview")
	conn := &connector.Connection{Definition: def, ClientID: "id", ClientSecret: "s3cr3t", RedirectURI: "http://127.0.0.1:9/cb"}
	flow, err := connector.NewFlow(conn)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tok, err := flow.ExchangeCode(ctx, "the-code", "the-verifier")
	if err != nil {
		t.Fatal(err)
	}
	bound, err := flow.WithDPoPKey(tok.DPoPKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bound.Refresh(ctx, "the-refresh"); err != nil {
		t.Fatal(err)
	}
	vals, _ := def.Values("", map[string]string{"ClientId": "id", "ClientSecret": "s3cr3t", "RedirectUri": "http://127.0.0.1:9/cb", "code": "the-code", "CodeVerifier": "the-verifier", "refreshToken": "the-refresh"})
	for i, key := range []string{"token_request_uri", "refresh_uri"} {
		p, err := def.Preview("", key, vals, true)
		if err != nil {
			t.Fatal(err)
		}
		if p.String() != got[i] {
			t.Errorf("%s: render shows\n%s\nthe flow sent\n%s", key, p, got[i])
		}
	}
	// Without the key, Flow.Refresh sends no proof (a token of before dpop).
	if _, err := flow.Refresh(ctx, "the-refresh"); err == nil || !strings.Contains(err.Error(), "no DPoP proof") {
		t.Errorf("a DPoP answer to a refresh without a proof: %v", err)
	}
	if strings.Contains(got[2], "DPoP:") {
		t.Errorf("a refresh without the key carried a proof:\n%s", got[2])
	}
}

// isProof reports whether v is a compact JWS whose header says dpop+jwt.
func isProof(v string) bool {
	head, _, ok := strings.Cut(v, ".")
	raw, err := base64.RawURLEncoding.DecodeString(head)
	var h struct {
		Typ string `json:"typ"`
	}
	return ok && err == nil && json.Unmarshal(raw, &h) == nil && h.Typ == "dpop+jwt" && strings.Count(v, ".") == 2
}
