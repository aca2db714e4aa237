package connector

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/connector-engine/connector/connector/oauth1"
	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/connector/token"
	"github.com/connector-engine/connector/definitions"
)

// OAuth1Flow signs a connection's requests with OAuth 1.0a and, for a
// three-legged definition, runs the authorization: temporary credentials,
// the user's approval, token credentials (RFC 5849 2). The token
// credentials it obtains are returned, not stored: Source.Store keeps them.
type OAuth1Flow struct {
	conn   *Connection
	o      *definitions.OAuth1
	vals   []string
	signer *oauth1.Signer
	fixed  oauth1.Token // two-legged: the token credentials from the fields

	// HTTPClient sends the token requests; its Timeout bounds each attempt.
	HTTPClient *http.Client
	// Now is the clock (tests move it).
	Now func() time.Time
	// AttemptLifetime is how long an authorization attempt stays valid.
	AttemptLifetime time.Duration
}

func newOAuth1Flow(c *Connection) (*OAuth1Flow, error) {
	o := c.Definition.Auth.OAuth1
	vals, err := c.values()
	if err != nil {
		return nil, err
	}
	expand := func(key string, t interface {
		Expand([]string) (string, error)
	}, isNil bool) (string, error) {
		if isNil {
			return "", nil
		}
		v, err := t.Expand(vals)
		if err != nil {
			return "", fmt.Errorf("connection %s: auth.oauth1.%s: %w", c.Key(), key, err)
		}
		return v, nil
	}
	s := &oauth1.Signer{Method: o.SignatureMethod}
	var errs []error
	var e error
	s.ConsumerKey, e = expand("consumer_key", o.ConsumerKey, o.ConsumerKey == nil)
	errs = append(errs, e)
	s.ConsumerSecret, e = expand("consumer_secret", o.ConsumerSecret, o.ConsumerSecret == nil)
	errs = append(errs, e)
	s.Realm, e = expand("realm", o.Realm, o.Realm == nil)
	errs = append(errs, e)
	f := &OAuth1Flow{conn: c, o: o, vals: vals, signer: s,
		HTTPClient: &http.Client{Timeout: DefaultRequestTimeout}, Now: time.Now, AttemptLifetime: 10 * time.Minute}
	f.fixed.Token, e = expand("token", o.Token, o.Token == nil)
	errs = append(errs, e)
	f.fixed.Secret, e = expand("token_secret", o.TokenSecret, o.TokenSecret == nil)
	errs = append(errs, e)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if s.ConsumerKey == "" {
		errs = append(errs, fmt.Errorf("connection %s: the OAuth 1.0a consumer key (auth.oauth1.consumer_key) is empty; set the field it names", c.Key()))
	}
	if o.SignatureMethod == definitions.OAuth1RSASHA1 {
		// A PEM has line breaks, which text templates refuse: a whole
		// placeholder gives the field's value as it is.
		pemKey, err := "", error(nil)
		if ph := o.PrivateKey.Placeholders(); len(ph) == 1 && o.PrivateKey.Source() == "${"+ph[0].Name+"}" {
			pemKey = vals[ph[0].Var]
		} else {
			pemKey, err = expand("private_key", o.PrivateKey, o.PrivateKey == nil)
		}
		if err == nil {
			s.PrivateKey, err = oauth1.ParseRSAPrivateKey(pemKey)
			if err != nil {
				err = fmt.Errorf("connection %s: auth.oauth1.private_key: %w", c.Key(), err)
			}
		}
		errs = append(errs, err)
	} else if s.ConsumerSecret == "" {
		errs = append(errs, fmt.Errorf("connection %s: the OAuth 1.0a consumer secret (auth.oauth1.consumer_secret) is empty; set the field it names", c.Key()))
	}
	if o.Token != nil && f.fixed.Token == "" {
		errs = append(errs, fmt.Errorf("connection %s: the OAuth 1.0a token (auth.oauth1.token) is empty; set the field it names", c.Key()))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return f, nil
}

// String keeps the credentials out of logs.
func (f *OAuth1Flow) String() string { return "oauth1-flow{connection=" + f.conn.Key() + "}" }

// Format keeps every fmt verb on the redacted String.
func (f *OAuth1Flow) Format(st fmt.State, verb rune) { redactedFormat(st, verb, f.String()) }

// OAuth1Attempt is one three-legged authorization attempt: the URL to send
// the user to and the temporary credentials the callback must name. It is
// single use.
type OAuth1Attempt struct {
	URL     string
	Expires time.Time
	temp    oauth1.Token
	used    bool
}

// String keeps the temporary secret out of logs.
func (a OAuth1Attempt) String() string { return "oauth1-attempt{}" }

// Start obtains temporary credentials (RFC 5849 2.1), with the
// connection's redirect URI as oauth_callback ("oob" when it has none), and
// returns the attempt whose URL the user approves at.
func (f *OAuth1Flow) Start(ctx context.Context) (*OAuth1Attempt, error) {
	if !f.o.ThreeLegged() {
		return nil, fmt.Errorf("definition %s signs with given token credentials (two-legged); there is nothing to authorize", f.conn.Definition.Name)
	}
	callback := f.conn.RedirectURI
	if callback == "" {
		callback = "oob"
	}
	vals, err := f.tokenRequest(ctx, "request token", f.o.RequestTokenURI, oauth1.Token{}, oauth1.Param{Name: "oauth_callback", Value: callback})
	if err != nil {
		return nil, err
	}
	if vals.Get("oauth_callback_confirmed") != "true" {
		return nil, fmt.Errorf("the request token answer has no oauth_callback_confirmed=true (RFC 5849 2.1); the provider may not be OAuth 1.0a")
	}
	a := &OAuth1Attempt{temp: oauth1.Token{Token: vals.Get("oauth_token"), Secret: vals.Get("oauth_token_secret")}, Expires: f.Now().Add(f.AttemptLifetime)}
	raw, err := f.o.AuthorizeURI.Expand(f.vals)
	if err != nil {
		return nil, fmt.Errorf("expanding authorize_uri: %w", err)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("authorize_uri does not expand to a URL")
	}
	q := u.Query()
	q.Set("oauth_token", a.temp.Token)
	u.RawQuery = q.Encode()
	a.URL = u.String()
	return a, nil
}

// Exchange checks the callback's query for attempt a (its oauth_token must
// be the attempt's) and exchanges the verifier for token credentials (RFC
// 5849 2.3). It consumes the attempt even on failure.
func (f *OAuth1Flow) Exchange(ctx context.Context, a *OAuth1Attempt, callback url.Values) (*token.Token, error) {
	if a == nil || a.used {
		return nil, ErrStateMismatch
	}
	a.used = true
	got := callback.Get("oauth_token")
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(a.temp.Token)) != 1 || !f.Now().Before(a.Expires) {
		return nil, ErrStateMismatch
	}
	verifier := callback.Get("oauth_verifier")
	if verifier == "" {
		return nil, errors.New("the callback carries no oauth_verifier (the user may have denied access); start the authorization again")
	}
	start := f.Now()
	vals, err := f.tokenRequest(ctx, "access token", f.o.AccessTokenURI, a.temp, oauth1.Param{Name: "oauth_verifier", Value: verifier})
	if err != nil {
		return nil, err
	}
	return &token.Token{AccessToken: vals.Get("oauth_token"), Secret: vals.Get("oauth_token_secret"), TokenType: "OAuth", Obtained: start}, nil
}

// tokenRequest POSTs one signed request for credentials and reads the
// form-encoded answer's oauth_token and oauth_token_secret.
func (f *OAuth1Flow) tokenRequest(ctx context.Context, what string, t interface {
	Expand([]string) (string, error)
}, tok oauth1.Token, extra oauth1.Param) (url.Values, error) {
	raw, err := t.Expand(f.vals)
	if err != nil {
		return nil, fmt.Errorf("%s: expanding the URI: %w", what, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, raw, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := f.signer.Sign(req, tok, extra); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	rreq, err := retryablehttp.FromRequest(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	// A request token consumes nothing, but the access token request spends
	// the verifier: only the former is repeated after it may have arrived.
	resp, err := newTokenClient(noRedirects(f.HTTPClient), extra.Name == "oauth_callback").Do(rreq)
	if err != nil {
		return nil, &RequestError{Op: what, Err: errors.New(f.redactString(err.Error(), tok.Secret))}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil || len(body) > maxBody {
		return nil, &RequestError{Op: what, Err: errors.New("the answer could not be read or is larger than 1 MiB")}
	}
	if resp.StatusCode/100 != 2 {
		return nil, &TokenError{Op: what, Status: resp.StatusCode, Code: http.StatusText(resp.StatusCode), Description: f.redactString(clip(string(body)), tok.Secret)}
	}
	vals, err := url.ParseQuery(string(body))
	if err != nil || vals.Get("oauth_token") == "" || vals.Get("oauth_token_secret") == "" {
		return nil, fmt.Errorf("%s: the answer (HTTP %d) is not a form with oauth_token and oauth_token_secret (RFC 5849 2.1, 2.3)", what, resp.StatusCode)
	}
	return vals, nil
}

func (f *OAuth1Flow) redactString(s string, extra ...string) string {
	secrets := append([]string{f.signer.ConsumerSecret, f.fixed.Secret}, extra...)
	for _, d := range f.conn.Definition.Fields {
		if d.Secret {
			secrets = append(secrets, f.vals[d.Var])
		}
	}
	return redactValues(s, secrets...)
}

// oauth1Transport signs every API request. Two-legged, the token
// credentials are the connection's; three-legged, the stored ones. A 401 is
// the answer: OAuth 1.0a token credentials do not refresh.
type oauth1Transport struct {
	flow *OAuth1Flow
	src  *Source // three-legged only
	next http.RoundTripper
}

func (t *oauth1Transport) RoundTrip(r *http.Request) (*http.Response, error) {
	tok := t.flow.fixed
	if t.src != nil {
		st, err := t.src.TokenContext(r.Context())
		if err != nil {
			closeBody(r)
			return nil, &credentialError{err}
		}
		tok = oauth1.Token{Token: st.AccessToken, Secret: st.Secret}
	}
	if err := t.flow.signer.Sign(r, tok); err != nil {
		closeBody(r)
		return nil, &credentialError{err}
	}
	return t.next.RoundTrip(r)
}

// oauth1API builds the signing transport of a connection; a three-legged
// one gets its Source (src, or a new one on st) for the stored token.
func oauth1API(c *Connection, st store.Store, src *Source, next http.RoundTripper) (http.RoundTripper, *Source, error) {
	if c.Definition.Auth.OAuth1.ThreeLegged() {
		if src == nil {
			var err error
			if src, err = NewSource(c, st); err != nil {
				return nil, nil, err
			}
		}
		return &oauth1Transport{flow: src.oauth1, src: src, next: next}, src, nil
	}
	f, err := newOAuth1Flow(c)
	if err != nil {
		return nil, nil, err
	}
	return &oauth1Transport{flow: f, next: next}, nil, nil
}
