package ntlm_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/ntlm"
	"github.com/connector-engine/connector/internal/ntlmserver"
)

const password = "Pa55-SECRET-word"

// echo answers with the account, the connection and the body it received.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	fmt.Fprintf(w, "%s conn=%d body=%s", ntlmserver.User(r), ntlmserver.ConnID(r), body)
})

func client(creds ntlm.Credentials, slots int) *http.Client {
	base := http.DefaultTransport.(*http.Transport)
	return &http.Client{Timeout: time.Minute, Transport: ntlm.New(creds, func() http.RoundTripper { return ntlm.SlotTransport(base) }, slots)}
}

func get(t *testing.T, c *http.Client, method, url, body string) (string, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("HTTP %d: %s", resp.StatusCode, data)
	}
	return string(data), nil
}

func TestHandshakeOnceThenReuse(t *testing.T) {
	srv := ntlmserver.Start(t, "CONTOSO", map[string]string{`CONTOSO\alice`: password}, echo)
	c := client(ntlm.Credentials{Username: "alice", Password: password, Domain: "CONTOSO"}, 1)
	got, err := get(t, c, "POST", srv.URL+"/odata", `{"name":"replayed"}`)
	if err != nil {
		t.Fatal(err)
	}
	if want := `CONTOSO\ALICE conn=1 body={"name":"replayed"}`; got != want {
		t.Fatalf("got %q, want %q (the body must reach the handler whole after the handshake)", got, want)
	}
	// The slot's connection is authenticated: no second handshake.
	if got, err = get(t, c, "GET", srv.URL+"/odata", ""); err != nil || got != `CONTOSO\ALICE conn=1 body=` {
		t.Fatalf("second request: %q, %v", got, err)
	}
	if n := srv.Handshakes.Load(); n != 1 {
		t.Fatalf("%d handshakes, want 1", n)
	}
}

func TestConcurrentHandshakesStayOnTheirConnection(t *testing.T) {
	srv := ntlmserver.Start(t, "CONTOSO", map[string]string{`CONTOSO\alice`: password}, echo)
	const slots = 4
	c := client(ntlm.Credentials{Username: `CONTOSO\alice`, Password: password}, slots)
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Go(func() {
			body := fmt.Sprintf("request-%d", i)
			got, err := get(t, c, "PUT", srv.URL+"/x", body)
			if err == nil && !strings.HasSuffix(got, "body="+body) {
				err = fmt.Errorf("got %q for %s", got, body)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := srv.OffConn.Load(); n != 0 {
		t.Fatalf("%d authenticate messages went on a connection without a challenge", n)
	}
	if n := srv.Handshakes.Load(); n < 1 || n > slots {
		t.Fatalf("%d handshakes for %d slots", n, slots)
	}
}

func TestWrongPasswordRefused(t *testing.T) {
	srv := ntlmserver.Start(t, "CONTOSO", map[string]string{`CONTOSO\alice`: password}, echo)
	wrong := "WRONG-secret-pass"
	creds := ntlm.Credentials{Username: "alice", Password: wrong, Domain: "CONTOSO"}
	tr := ntlm.New(creds, func() http.RoundTripper { return ntlm.SlotTransport(http.DefaultTransport.(*http.Transport)) }, 1)
	_, err := get(t, &http.Client{Transport: tr}, "GET", srv.URL+"/", "")
	var re *ntlm.RefusedError
	if !errors.As(err, &re) || !re.Handshake {
		t.Fatalf("err = %v, want a RefusedError after the handshake", err)
	}
	want := `NTLM: the server refused the credentials of CONTOSO\alice (HTTP 401 after the handshake); check the connection's username, password and domain`
	if !strings.HasSuffix(err.Error(), want) {
		t.Fatalf("err = %q, want it to end in %q", err, want)
	}
	if srv.Refused.Load() != 1 {
		t.Fatalf("the server refused %d authenticate messages, want 1", srv.Refused.Load())
	}
	for _, s := range []string{err.Error(), fmt.Sprint(creds), fmt.Sprintf("%+v %#v %s %v", creds, creds, tr, tr)} {
		if strings.Contains(s, wrong) {
			t.Fatalf("the password shows: %s", s)
		}
	}
}

func TestServerWithoutNTLM(t *testing.T) {
	cases := []struct {
		name, header, want string
	}{
		{"basic only", `Basic realm="x"`, "NTLM: the server answered HTTP 401 and offers Basic, not NTLM or Negotiate; use the definition's scheme for that"},
		{"no header", "", "NTLM: the server answered HTTP 401 without a WWW-Authenticate header, so it offers no NTLM; check the base URL, or the scheme the API uses"},
		{"ntlm without a challenge", "NTLM", "NTLM: the server did not answer the negotiate message with a usable challenge (this client speaks NTLMv2 only, without key exchange); check the server's NTLM settings"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("Authorization") != "" && strings.HasPrefix(r.Header.Get("Authorization"), "Basic") {
					t.Error("the password went out in Basic")
				}
				if c.header != "" {
					w.Header().Set("WWW-Authenticate", c.header)
				}
				w.WriteHeader(401)
			}))
			defer srv.Close()
			_, err := get(t, client(ntlm.Credentials{Username: "alice", Password: password}, 1), "GET", srv.URL, "")
			if err == nil || !strings.HasSuffix(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
}
