package connector

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Mutual TLS (RFC 8705): a connection whose definition has
// auth.oauth.client_certificate presents that certificate in the TLS
// handshake of its token requests (and of its API calls with api_calls).
//
// The certificate is one connection's credential, so it lives in a
// transport of that connection's own: http.Transport pools connections by
// host, and a pooled TLS connection keeps the certificate its handshake
// presented. Two connections (two tenants) sharing one transport would
// send each other's requests over each other's authenticated connections.

// clientTLS is a connection's parsed certificate and the transports that
// present it; shared by copies of a Flow.
type clientTLS struct {
	once  sync.Once
	cert  *tls.Certificate
	err   error
	field string // the field holding the certificate, for messages

	mu   sync.Mutex
	base http.RoundTripper // what rt was cloned from
	rt   *http.Transport
}

// clientCertificate parses the connection's certificate and key once. A
// definition without client_certificate has none (nil, nil).
func (f *Flow) clientCertificate() (*tls.Certificate, error) {
	cc := f.o.ClientCertificate
	if cc == nil || cc.Certificate == nil || cc.PrivateKey == nil {
		return nil, nil
	}
	f.mtls.once.Do(func() {
		// The rules make each exactly one placeholder of a field.
		cf, kf := cc.Certificate.Placeholders()[0], cc.PrivateKey.Placeholders()[0]
		f.mtls.field = cf.Name
		f.mtls.cert, f.mtls.err = loadClientCertificate(f.vals[cf.Var], f.vals[kf.Var], cf.Name, kf.Name)
		if f.mtls.err != nil {
			f.mtls.err = fmt.Errorf("connection %s: auth.oauth.client_certificate: %w", f.conn.Key(), f.mtls.err)
		}
	})
	return f.mtls.cert, f.mtls.err
}

// usableCertificate is the certificate, checked against the clock: an
// expired one would only make the provider end the handshake with an alert
// that says nothing of the cause.
func (f *Flow) usableCertificate() (*tls.Certificate, error) {
	cert, err := f.clientCertificate()
	if cert == nil || err != nil {
		return cert, err
	}
	if err := checkValidity(cert.Leaf, f.Now(), f.mtls.field); err != nil {
		return nil, fmt.Errorf("connection %s: auth.oauth.client_certificate: %w", f.conn.Key(), err)
	}
	return cert, nil
}

// loadClientCertificate parses the PEMs of the fields certField and
// keyField. Its errors name the fields and never quote their contents.
func loadClientCertificate(certPEM, keyPEM, certField, keyField string) (*tls.Certificate, error) {
	fix := func(field, what string) string {
		return fmt.Sprintf("set field %s to %s (${file:%s} in a connection file)", field, what, map[bool]string{true: "cert.pem", false: "key.pem"}[field == certField])
	}
	if strings.TrimSpace(certPEM) == "" {
		return nil, fmt.Errorf("field %s (the certificate) is empty; %s", certField, fix(certField, "the PEM certificate"))
	}
	var chain [][]byte
	for rest := []byte(certPEM); ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			chain = append(chain, b.Bytes)
		}
	}
	if len(chain) == 0 {
		return nil, fmt.Errorf("field %s holds no PEM certificate (a block beginning -----BEGIN CERTIFICATE-----); %s", certField, fix(certField, "the certificate file the provider issued or registered"))
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return nil, fmt.Errorf("the first certificate in field %s does not parse (%v); %s", certField, err, fix(certField, "the PEM certificate"))
	}
	if strings.TrimSpace(keyPEM) == "" {
		return nil, fmt.Errorf("field %s (the private key) is empty; %s", keyField, fix(keyField, "the certificate's PEM private key"))
	}
	hasKey := false
	for rest := []byte(keyPEM); ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		hasKey = hasKey || strings.HasSuffix(b.Type, "PRIVATE KEY")
	}
	if !hasKey {
		return nil, fmt.Errorf("field %s holds no PEM private key (a block such as -----BEGIN PRIVATE KEY-----); %s", keyField, fix(keyField, "the certificate's private key"))
	}
	cert, err := tls.X509KeyPair([]byte(certPEM), []byte(keyPEM))
	switch {
	case err != nil && strings.Contains(err.Error(), "does not match"):
		return nil, fmt.Errorf("the private key in field %s is not the key of the certificate in field %s (%s): their public keys differ; put the key the certificate was issued for", keyField, certField, describeCert(leaf))
	case err != nil:
		// crypto/tls names what failed ("failed to parse private key"),
		// never the key's bytes.
		return nil, fmt.Errorf("the private key in field %s does not parse (%v); it must be an unencrypted RSA, EC or Ed25519 key in PEM", keyField, err)
	}
	cert.Leaf = leaf
	return &cert, nil
}

func checkValidity(leaf *x509.Certificate, now time.Time, field string) error {
	switch {
	case now.After(leaf.NotAfter):
		return fmt.Errorf("the client certificate (%s) expired at %s, %s ago; ask the provider for a new one and put it (with its key) in field %s",
			describeCert(leaf), leaf.NotAfter.UTC().Format(time.RFC3339), roughly(now.Sub(leaf.NotAfter)), field)
	case now.Before(leaf.NotBefore):
		return fmt.Errorf("the client certificate (%s) is not valid before %s, %s from now; check this machine's clock or wait",
			describeCert(leaf), leaf.NotBefore.UTC().Format(time.RFC3339), roughly(leaf.NotBefore.Sub(now)))
	}
	return nil
}

// describeCert names a certificate by what is public about it.
func describeCert(c *x509.Certificate) string {
	return fmt.Sprintf("subject %q, serial %s", c.Subject.String(), c.SerialNumber.Text(16))
}

// roughly is a duration for people: days when it is long.
func roughly(d time.Duration) string {
	if d >= 48*time.Hour {
		return fmt.Sprintf("%d days", int(d.Hours()/24))
	}
	return d.Round(time.Second).String()
}

// withCertificate returns the connection's transport for base: a clone of
// base presenting cert in every handshake. nil base is
// http.DefaultTransport. The clone is kept while base stays the same, so
// its connections are pooled; it is never base itself.
func (m *clientTLS) withCertificate(base http.RoundTripper, cert *tls.Certificate) (*http.Transport, error) {
	if base == nil {
		base = http.DefaultTransport
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rt != nil && m.base == base {
		return m.rt, nil
	}
	t, ok := base.(*http.Transport)
	if !ok {
		return nil, fmt.Errorf("a client certificate is presented by an *http.Transport, and the transport given is a %T; pass an *http.Transport (or none)", base)
	}
	rt := presenting(t, func() (*tls.Certificate, error) { return cert, nil }) // checked before each token request
	m.base, m.rt = base, rt
	return rt, nil
}

// presenting clones t into a transport whose handshakes present what get
// returns.
func presenting(t *http.Transport, get func() (*tls.Certificate, error)) *http.Transport {
	rt := t.Clone()
	cfg := &tls.Config{}
	if rt.TLSClientConfig != nil {
		cfg = rt.TLSClientConfig.Clone()
	}
	cfg.Certificates = nil
	// GetClientCertificate, not Certificates: crypto/tls would leave out a
	// certificate that matches none of the CAs the server names, and the
	// provider's refusal is clearer than a handshake without one.
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return get() }
	rt.TLSClientConfig = cfg
	return rt
}

// tokenClient is the client for one token request: HTTPClient, or a copy
// sending through the connection's certificate-presenting transport.
func (f *Flow) tokenClient() (*http.Client, error) {
	cert, err := f.usableCertificate()
	if cert == nil || err != nil {
		return f.HTTPClient, err
	}
	hc := f.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: DefaultRequestTimeout}
	}
	rt, err := f.mtls.withCertificate(hc.Transport, cert)
	if err != nil {
		return nil, fmt.Errorf("connection %s: Flow.HTTPClient: %w", f.conn.Key(), err)
	}
	cp := *hc
	cp.Transport = rt
	return &cp, nil
}

// apiTransport wraps the API's base transport when the definition sends
// the certificate on API calls (api_calls); otherwise it returns base.
func (f *Flow) apiTransport(base http.RoundTripper) (http.RoundTripper, error) {
	if cc := f.o.ClientCertificate; cc == nil || !cc.APICalls {
		return base, nil
	}
	cert, err := f.clientCertificate() // its validity is checked at each handshake
	if cert == nil || err != nil {
		return base, err
	}
	t, ok := base.(*http.Transport)
	if !ok {
		return nil, fmt.Errorf("connection %s: its definition presents a client certificate on API calls (client_certificate.api_calls), which needs an *http.Transport as APIOptions.Base, not a %T", f.conn.Key(), base)
	}
	now := f.Now
	// The API's own transport (see withCertificate); the validity is
	// checked at every handshake: an API kept for days outlives a
	// certificate, and the error then says why calls fail.
	return presenting(t, func() (*tls.Certificate, error) {
		if err := checkValidity(cert.Leaf, now(), f.mtls.field); err != nil {
			return nil, fmt.Errorf("connection %s: auth.oauth.client_certificate: %w", f.conn.Key(), err)
		}
		return cert, nil
	}), nil
}

// tlsRefusal explains a handshake the server ended with an alert about
// the client certificate (RFC 8446 6.2): crypto/tls says only "remote
// error: tls: bad certificate" and the like.
func (f *Flow) tlsRefusal(err error) error {
	msg := err.Error()
	if !strings.Contains(msg, "remote error: tls: ") {
		return err
	}
	switch {
	case f.o.ClientCertificate == nil && strings.Contains(msg, "certificate required"):
		return fmt.Errorf("%w: the server wants a client certificate (mutual TLS, RFC 8705); add auth.oauth.client_certificate to definition %s", err, f.def.Name)
	case f.o.ClientCertificate != nil && (strings.Contains(msg, "certificate") || strings.Contains(msg, "authority")):
		what := "the client certificate"
		if cert, _ := f.clientCertificate(); cert != nil {
			what += " (" + describeCert(cert.Leaf) + ")"
		}
		return fmt.Errorf("%w: the server refused %s in the TLS handshake; check that it is the one registered with the provider, issued by a CA it trusts", err, what)
	}
	return err
}
