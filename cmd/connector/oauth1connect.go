package main

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/spf13/cobra"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/connector/token"
)

// openOAuth1Session opens the connection of connect when its definition is
// three-legged OAuth 1.0a (Trello); ok is false for any other, which
// openSession handles.
func (a *app) openOAuth1Session(f *connFlags) (s *session, ok bool, err error) {
	conn, loc, err := a.loadConnection(f)
	if err != nil {
		return nil, true, err
	}
	o1 := conn.Definition.Auth.OAuth1
	if o1 == nil {
		return nil, false, nil
	}
	if !o1.ThreeLegged() {
		return nil, true, usageErrorf("definition %s signs with the token credentials its connection gives (two-legged OAuth 1.0a); there is nothing to connect: call the API directly", conn.Definition.Name)
	}
	st, err := f.openStore(loc)
	if err != nil {
		return nil, true, err
	}
	src, err := connector.NewSource(conn, st)
	if err != nil {
		st.Close()
		return nil, true, &exitError{code: exitFailed, err: err}
	}
	if v := a.verboseFor(conn, nil); v != nil { // the flow's token requests, logged
		fl := src.OAuth1()
		client := *fl.HTTPClient
		client.Transport = v
		fl.HTTPClient = &client
	}
	return &session{conn: conn, store: st, source: src}, true, nil
}

// connectOAuth1 runs OAuth 1.0a's three legs (RFC 5849 2): temporary
// credentials with the loopback redirect URI as oauth_callback, the user's
// approval in a browser, and on the callback the token credentials for its
// oauth_verifier, which are stored. A callback whose oauth_token is not this
// attempt's is answered and ignored, so a stray request cannot spend the
// attempt.
func (a *app) connectOAuth1(ctx context.Context, s *session, show func(string)) (*token.Token, error) {
	if s.conn.RedirectURI == "" {
		return nil, fmt.Errorf("connection %s has no redirect URI: the CLI receives the authorization on this machine, so give one such as http://127.0.0.1:8765/callback (redirect_uri, or CallbackURL in a connection string)", s.conn.Key())
	}
	ln, path, err := listenRedirect(ctx, s.conn.RedirectURI)
	if err != nil {
		return nil, err
	}
	flow := s.source.OAuth1()
	attempt, err := flow.Start(ctx)
	if err != nil {
		ln.Close()
		return nil, err
	}
	au, err := url.Parse(attempt.URL)
	if err != nil {
		ln.Close()
		return nil, err
	}
	temp := au.Query().Get("oauth_token")
	ours := func(q url.Values) bool {
		got := q.Get("oauth_token")
		return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(temp)) == 1
	}
	return receiveCallback(ctx, ln, path, "its oauth_token is another", ours, func() { show(attempt.URL) }, func(ctx context.Context, q url.Values) (*token.Token, error) {
		t, err := flow.Exchange(ctx, attempt, q)
		if err == nil {
			err = s.source.Store(ctx, t)
		}
		return t, err
	})
}

// runConnectOAuth1 is connect for a three-legged OAuth 1.0a connection.
func (a *app) runConnectOAuth1(cmd *cobra.Command, s *session, noBrowser bool, timeout time.Duration) error {
	ctx, cancel := interruptible(cmd.Context())
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, timeout)
	defer cancelT()
	show := func(u string) {
		if noBrowser {
			fmt.Fprintln(a.stdout, u)
			return
		}
		a.openAuthorization(s.conn.Definition.Name, u) // browser.go
	}
	tok, err := a.connectOAuth1(ctx, s, show)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("no authorization arrived within %s; run connect again (and approve within --timeout)", timeout)
		}
		return &exitError{code: exitFailed, err: err}
	}
	fmt.Fprintf(a.stdout, "connected %s: %s\n", s.describe(), expiresIn(*tok, time.Now()))
	return nil
}
