package connector

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/connector-engine/connector/connector/token"
	"github.com/connector-engine/connector/definitions"
)

// Choice is what a learn request with choose: ask offers: the candidates
// the provider listed (Xero's organisations, Procore's companies), for the
// person connecting to pick one.
type Choice struct {
	Field   string // the field being learned, e.g. TenantId
	Title   string // the field's title, or its name
	Options []Option
}

// Option is one candidate of a Choice. Value is empty when the field is
// secret: a chooser shows labels, never a secret.
type Option struct {
	Value string
	Label string // from learn.label; "" when the definition names none
}

// A Chooser picks one of c.Options and returns its index; Flow.Choose.
type Chooser func(ctx context.Context, c Choice) (int, error)

// learnCallback reads the values the callback carries next to the code.
func (f *Flow) learnCallback(q url.Values, into map[string]string) error {
	for _, fd := range f.def.Learned() {
		if fd.Learn.From != definitions.LearnCallback {
			continue
		}
		if v := q.Get(fd.Learn.Param); v != "" {
			if err := f.keep(fd, v, into); err != nil {
				return err
			}
		}
	}
	return nil
}

// learnResponse reads the values a token response carries (a code
// exchange's, a refresh's or a client-credentials one's); a value the
// response does not carry is left out, for the caller to keep the one it
// had.
func (f *Flow) learnResponse(contentType string, body []byte, into map[string]string) error {
	var fields []*definitions.Field
	for _, fd := range f.def.Learned() {
		if fd.Learn.From == definitions.LearnTokenResponse {
			fields = append(fields, fd)
		}
	}
	if len(fields) == 0 {
		return nil
	}
	m, err := decodeBody(contentType, body)
	if err != nil {
		return err
	}
	doc, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("the token response: %w", err)
	}
	for _, fd := range fields {
		v, found, err := firstValue(doc, fd.Learn.Paths)
		if err != nil {
			return fmt.Errorf("learning %s from %s: %w", fd.Name, fd.Learn.Source(), err)
		}
		if found {
			if err := f.keep(fd, v, into); err != nil {
				return err
			}
		}
	}
	return nil
}

// keep checks a learned value against its field's type and pattern (a
// Salesforce instance_url must be an https URL on salesforce.com) before it
// can ever form a host or a header.
func (f *Flow) keep(fd *definitions.Field, v string, into map[string]string) error {
	if msg := fd.Check(v); msg != "" {
		return fmt.Errorf("the value learned for %s from %s is refused: %s; nothing was stored", fd.Name, fd.Learn.Source(), msg)
	}
	into[fd.Name] = v
	return nil
}

// firstValue returns the scalar at the first of paths present in doc.
func firstValue(doc []byte, paths []string) (string, bool, error) {
	for _, p := range paths {
		raw, ok := lookupJSON(doc, p)
		if !ok {
			continue
		}
		v, err := scalar(raw)
		if err != nil {
			return "", false, fmt.Errorf("%s %v", p, err)
		}
		if v != "" {
			return v, true, nil
		}
	}
	return "", false, nil
}

// scalar is a JSON string, number or boolean as text.
func scalar(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "", nil
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", errors.New("is not a valid JSON string")
		}
		return s, nil
	case '{':
		return "", errors.New("is an object, not a value")
	case '[':
		return "", errors.New("is an array, not a value")
	}
	if !json.Valid(raw) {
		return "", errors.New("is not valid JSON")
	}
	return string(raw), nil // a number, true or false, as written
}

// learnRequests runs the definition's learn requests with the new token,
// each after the values it may use are known, and adds what they teach to
// tok.Values. Required learned values that are still missing fail here,
// before anything is stored.
func (f *Flow) learnRequests(ctx context.Context, tok *token.Token) error {
	for _, fd := range f.def.Learned() {
		if fd.Learn.From != definitions.LearnRequest {
			continue
		}
		if _, given := f.conn.Fields[fd.Name]; given && f.conn.Fields[fd.Name] != "" {
			continue // the connection says which; nothing to ask
		}
		if err := f.learnByRequest(ctx, fd, tok); err != nil {
			return err
		}
	}
	for _, fd := range f.def.Learned() {
		if fd.Required && tok.Values[fd.Name] == "" && f.conn.Fields[fd.Name] == "" {
			return fmt.Errorf("connecting did not yield %s, which definition %s requires (learned from %s); nothing was stored: check the definition against what the provider sends, then authorize again", fd.Name, f.def.Name, fd.Learn.Source())
		}
	}
	return nil
}

func (f *Flow) learnByRequest(ctx context.Context, fd *definitions.Field, tok *token.Token) error {
	l := fd.Learn
	cc := f.conn.clone()
	cc.learned = tok.Values
	vals, err := cc.values()
	if err != nil {
		return fmt.Errorf("learning %s: %w", fd.Name, err)
	}
	raw, err := l.URL.Expand(vals)
	if err != nil {
		return fmt.Errorf("learning %s: expanding learn.url: %w", fd.Name, err)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("learning %s: learn.url does not expand to an absolute URL", fd.Name)
	}
	// The access token goes only where the grant's tokens go already.
	org, _ := origin(raw)
	allowed := map[string]bool{}
	for _, v := range []string{vals[definitions.VarBaseURL], vals[definitions.VarLoginURL]} {
		if o, err := origin(v); err == nil {
			allowed[o] = true
		}
	}
	if b, err := f.conn.Binding(); err == nil {
		for _, o := range strings.Fields(b.TokenOrigin) {
			allowed[o] = true
		}
	}
	if !allowed[org] {
		return fmt.Errorf("learning %s: learn.url goes to %s, which is neither the API's, the login URL's nor the token endpoint's origin, so the access token is not sent there; nothing was stored", fd.Name, org)
	}
	if f.o.SendToken.In == definitions.TokenInQuery {
		q := u.Query()
		q.Set(f.o.SendToken.Name, tok.AccessToken)
		u.RawQuery = q.Encode()
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("learning %s: %w", fd.Name, err)
	}
	req.Header.Set("Accept", "application/json")
	if st := f.o.SendToken; st.In != definitions.TokenInQuery {
		name, prefix := cmpOr(st.Name, "Authorization"), st.Prefix
		if st.TypePrefix || st.Name == "" {
			prefix = tok.Type() + " "
		}
		req.Header.Set(name, prefix+tok.AccessToken)
	}
	where := "GET " + redactedPath(u)
	hc, err := f.tokenClient() // a certificate-bound token needs the certificate (flow_mtls.go)
	if err == nil {
		hc, err = f.resourceClient(hc, tok) // a DPoP-bound one a proof (flow_dpop.go)
	}
	if err != nil {
		return fmt.Errorf("learning %s: %w", fd.Name, err)
	}
	resp, err := newTokenClient(noRedirects(hc), true).Do(req)
	if err != nil {
		return fmt.Errorf("learning %s: %s: %w", fd.Name, where, f.redact(err, tok.AccessToken))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	switch {
	case err != nil:
		return fmt.Errorf("learning %s: %s: reading the answer: %w", fd.Name, where, f.redact(err, tok.AccessToken))
	case len(body) > maxBody:
		return fmt.Errorf("learning %s: %s answered more than %d bytes; refusing it", fd.Name, where, maxBody)
	case resp.StatusCode/100 != 2:
		return fmt.Errorf("learning %s: %s answered HTTP %d; nothing was stored: check learn.url, and that the scopes allow it", fd.Name, where, resp.StatusCode)
	}
	var opts []Option
	var values []string
	for item, err := range ItemsOf(body, l.Items) {
		if err != nil {
			return fmt.Errorf("learning %s: %s: %w", fd.Name, where, err)
		}
		v, found, err := firstValue(item, l.Paths)
		if err != nil {
			return fmt.Errorf("learning %s: %s: %w", fd.Name, where, err)
		}
		if !found {
			continue
		}
		o := Option{Value: v}
		if fd.Secret {
			o.Value = ""
		}
		if l.Label != "" {
			if raw, ok := lookupJSON(item, l.Label); ok {
				o.Label, _ = scalar(raw)
			}
		}
		opts, values = append(opts, o), append(values, v)
		if len(values) > 1000 {
			return fmt.Errorf("learning %s: %s lists more than 1000 candidates; set %s in the connection instead", fd.Name, where, fd.Name)
		}
	}
	if len(values) == 0 {
		return nil // missing: the field's default, or the required check, decides
	}
	pick := 0
	if l.Choose == definitions.ChooseAsk && len(values) > 1 {
		if f.Choose == nil {
			var labels []string
			for i, o := range opts {
				labels = append(labels, cmpOr(o.Label, o.Value, "#"+strconv.Itoa(i+1)))
			}
			return fmt.Errorf("learning %s: %s offers %d choices (%s) and nobody can be asked here; set %s in the connection to the one wanted", fd.Name, where, len(values), strings.Join(labels, ", "), fd.Name)
		}
		if pick, err = f.Choose(ctx, Choice{Field: fd.Name, Title: cmpOr(fd.Title, fd.Name), Options: opts}); err != nil {
			return fmt.Errorf("learning %s: %w", fd.Name, err)
		}
		if pick < 0 || pick >= len(values) {
			return fmt.Errorf("learning %s: choice %d is not one of the %d offered", fd.Name, pick+1, len(values))
		}
	}
	if tok.Values == nil {
		tok.Values = map[string]string{}
	}
	return f.keep(fd, values[pick], tok.Values)
}

func cmpOr(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// WithLearned returns a copy of f whose placeholders also have the values
// learned when connecting (token.Token.Values), for the requests that come
// after it: refresh, revocation and introspection (Salesforce's revoke at
// the org's instance_url). A value the connection gives itself still wins.
// f is unchanged; the copy shares its HTTP client, clock and signer.
func (f *Flow) WithLearned(learned map[string]string) (*Flow, error) {
	if len(learned) == 0 || len(f.def.Learned()) == 0 {
		return f, nil
	}
	cc := f.conn.clone()
	cc.learned = learned
	vals, err := cc.values()
	if err != nil {
		return nil, fmt.Errorf("connection %s: the values it learned when connecting: %w", f.conn.Key(), err)
	}
	g := *f
	g.conn, g.vals = cc, vals
	return &g, nil
}
