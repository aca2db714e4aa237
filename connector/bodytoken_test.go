package connector_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/definitions"
)

// zabbixServer answers JSON-RPC as Zabbix 6.0 does: user.login returns a
// session id in "result", every other method needs it in the body's
// "auth" member. Unlike Zabbix it answers an ended session with 401, so
// that the engine's log-in-again-and-replay is exercised.
type zabbixServer struct {
	*httptest.Server
	mu       sync.Mutex
	logins   int
	valid    map[string]bool
	requests []map[string]any // the bodies of the API calls
}

func newZabbixServer(t *testing.T) *zabbixServer {
	z := &zabbixServer{valid: map[string]bool{}}
	z.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		if r.URL.Path != "/api_jsonrpc.php" || r.Header.Get("Content-Type") != "application/json" || json.NewDecoder(r.Body).Decode(&body) != nil {
			http.Error(w, "want a JSON-RPC POST to /api_jsonrpc.php", http.StatusBadRequest)
			return
		}
		z.mu.Lock()
		defer z.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if body["method"] == "user.login" {
			if p, _ := body["params"].(map[string]any); p["user"] != "Admin" || p["password"] != "zabbix-pw" {
				fmt.Fprint(w, `{"jsonrpc":"2.0","error":{"code":-32602,"message":"Login name or password is incorrect."},"id":1}`)
				return
			}
			z.logins++
			sid := fmt.Sprintf("0424bd59b807674191e7d77572075f3%d", z.logins)
			z.valid[sid] = true
			fmt.Fprintf(w, `{"jsonrpc":"2.0","result":%q,"id":1}`, sid)
			return
		}
		z.requests = append(z.requests, body)
		if sid, _ := body["auth"].(string); !z.valid[sid] {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"jsonrpc":"2.0","error":{"code":-32602,"message":"Session terminated, re-login, please."},"id":1}`)
			return
		}
		fmt.Fprintf(w, `{"jsonrpc":"2.0","result":[{"hostid":"10084"}],"id":%v}`, body["id"])
	}))
	t.Cleanup(z.Close)
	return z
}

func (z *zabbixServer) endSessions() {
	z.mu.Lock()
	clear(z.valid)
	z.mu.Unlock()
}

// TestBodyToken: a session token sent in the JSON body's auth member (the
// Zabbix 6.0 API), renewed and replayed after a 401 with the member set once;
// an OAuth token in a form field; requests that cannot carry it refused
// before they are sent, with errors that never show it.
func TestBodyToken(t *testing.T) {
	ctx := context.Background()
	z := newZabbixServer(t)
	src := `name: zabbix-test
title: Zabbix test
base_url: ` + z.URL + `
fields:
  Username: {required: true}
  Password: {required: true, secret: true}
auth:
  scheme: session
  session:
    login_uri: ${BaseUrl}/api_jsonrpc.php
    body: {jsonrpc: "2.0", method: user.login, params: {user: "${Username}", password: "${Password}"}, id: 1}
    token_path: result
    send_token: {in: body, name: auth}
actions:
  get_hosts:
    method: POST
    path: /api_jsonrpc.php
    body: {jsonrpc: "2.0", method: host.get, params: {output: [hostid]}, id: 2}
`
	set, err := definitions.Parse(nil, definitions.File{Path: "zabbix.yaml", Data: []byte(src)})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := set.Get("zabbix-test")
	conn := &connector.Connection{Definition: d, Fields: map[string]string{"Username": "Admin", "Password": "zabbix-pw"}}
	api, err := connector.NewAPI(conn, store.NewMemory(), nil)
	if err != nil {
		t.Fatal(err)
	}
	call := func() {
		t.Helper()
		resp, err := api.Call(ctx, "get_hosts", nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"hostid":"10084"`) {
			t.Fatalf("get_hosts answered %d %s", resp.StatusCode, b)
		}
	}
	call()
	z.endSessions()
	call() // 401: logs in again and replays

	z.mu.Lock()
	reqs, logins := z.requests, z.logins
	z.mu.Unlock()
	if logins != 2 || len(reqs) != 3 {
		t.Fatalf("%d logins and %d API requests; want 2 and 3 (a call, a refused one, its replay)", logins, len(reqs))
	}
	for i, want := range []string{"0424bd59b807674191e7d77572075f31", "0424bd59b807674191e7d77572075f31", "0424bd59b807674191e7d77572075f32"} {
		b := reqs[i]
		if b["auth"] != want || b["method"] != "host.get" || b["jsonrpc"] != "2.0" || b["id"] != float64(2) || len(b) != 5 {
			t.Errorf("API request %d body %v; want the action's members and auth %s", i, b, want)
		}
	}

	// Requests that cannot carry the token are refused before they go out.
	for _, tt := range []struct {
		name string
		req  connector.Request
		want string
	}{
		{"GET", connector.Request{Method: http.MethodGet, Path: "/api_jsonrpc.php"}, "a GET request has none"},
		{"array", connector.Request{Method: http.MethodPost, Path: "/api_jsonrpc.php", Body: []byte(`[1,2]`)}, "not a JSON object"},
		{"text", connector.Request{Method: http.MethodPost, Path: "/api_jsonrpc.php", Body: []byte("x"), Header: http.Header{"Content-Type": {"text/plain"}}}, `must be JSON or a form, not "text/plain"`},
	} {
		resp, err := api.Do(ctx, tt.req)
		if err == nil {
			resp.Body.Close()
			t.Errorf("%s: sent (%d); want it refused", tt.name, resp.StatusCode)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "send_token.in: body") || strings.Contains(err.Error(), "0424bd59") {
			t.Errorf("%s: %v; want it to say %q and send_token.in: body, without the token", tt.name, err, tt.want)
		}
	}
	z.mu.Lock()
	if len(z.requests) != 3 {
		t.Errorf("%d API requests; the refused ones must not be sent", len(z.requests))
	}
	z.mu.Unlock()

	// An OAuth access token in a form field, Slack-style.
	var mu sync.Mutex
	var forms []url.Values
	slack := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/oauth.v2.access" {
			fmt.Fprint(w, `{"ok":true,"access_token":"xoxb-FORM-TOKEN","token_type":"Bearer"}`)
			return
		}
		_ = r.ParseForm()
		mu.Lock()
		forms = append(forms, r.PostForm)
		mu.Unlock()
		fmt.Fprint(w, `{"ok":true}`)
	}))
	defer slack.Close()
	set, err = definitions.Parse(nil, definitions.File{Path: "slack.yaml", Data: []byte(`name: slack-form
title: Slack form token
base_url: ` + slack.URL + `/api
auth:
  scheme: oauth_client
  oauth:
    version: V2
    token_request_uri: ` + slack.URL + `/oauth.v2.access
    send_token: {in: body, name: token}
`)})
	if err != nil {
		t.Fatal(err)
	}
	d, _ = set.Get("slack-form")
	api, err = connector.NewAPI(&connector.Connection{Definition: d, ClientID: "cid", ClientSecret: "cs"}, store.NewMemory(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{"channel=C1&text=hello+there", ""} {
		resp, err := api.Do(ctx, connector.Request{Method: http.MethodPost, Path: "/chat.postMessage", Body: []byte(body), Header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	mu.Lock()
	defer mu.Unlock()
	if len(forms) != 2 || forms[0].Get("token") != "xoxb-FORM-TOKEN" || forms[0].Get("channel") != "C1" || forms[0].Get("text") != "hello there" || len(forms[1]) != 1 || forms[1].Get("token") != "xoxb-FORM-TOKEN" {
		t.Errorf("form bodies %v; want the token field added to each", forms)
	}
}
