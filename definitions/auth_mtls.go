package definitions

import (
	"fmt"

	"github.com/connector-engine/connector/templates"
)

// Mutual-TLS client authentication (RFC 8705): the client presents an
// X.509 certificate in the TLS handshake with the token endpoint.
const (
	// ClientAuthTLS authenticates the client by a certificate from a PKI
	// the provider trusts, matched to the client by its subject (RFC 8705
	// 2.1): the request carries client_id and no secret.
	ClientAuthTLS = "tls_client_auth"
	// ClientAuthSelfSignedTLS authenticates the client by a self-signed
	// certificate registered with the provider (RFC 8705 2.2).
	ClientAuthSelfSignedTLS = "self_signed_tls_client_auth"
)

// IsTLSClientAuth reports whether method authenticates the client by its
// TLS certificate alone (no secret is sent).
func IsTLSClientAuth(method string) bool {
	return method == ClientAuthTLS || method == ClientAuthSelfSignedTLS
}

// ClientCertificate is the certificate a connection presents in the TLS
// handshake of its token requests and, with APICalls, of its API calls.
// A provider may want it next to a secret (ADP: HTTP Basic and the
// certificate) or instead of one (client_auth: tls_client_auth).
type ClientCertificate struct {
	Certificate *templates.Template // one field holding the PEM certificate (and any intermediates)
	PrivateKey  *templates.Template // one secret field holding the PEM private key
	// APICalls sends the certificate on API calls too: the provider binds
	// its tokens to the certificate (RFC 8705 3) or simply wants mutual TLS
	// everywhere, and refuses a token presented over another connection.
	APICalls bool
}

type rawClientCertificate struct {
	Certificate string `yaml:"certificate"`
	PrivateKey  string `yaml:"private_key"`
	APICalls    bool   `yaml:"api_calls"`
}

var scopeCertificate = scope{name: "the client certificate", noLearned: true, hints: map[int]string{
	VarClientSecret: "a certificate is not the client secret; name the field holding the PEM",
}}

// publicClientAuth is the error for a public client (client: public, no
// secret) given client authentication method at key (client_auth or
// refresh_client_auth): what that method sends, which such a client lacks.
func publicClientAuth(key, method string) string {
	switch {
	case IsTLSClientAuth(method):
		return fmt.Sprintf("a public client does not authenticate, and %s authenticates the client by the certificate it presents in the TLS handshake (RFC 8705 2); to use a certificate remove client: public, else remove %s: %s", method, key, method)
	case method == ClientAuthPrivateKeyJWT:
		return fmt.Sprintf("a public client does not authenticate, and private_key_jwt authenticates the client by an assertion signed with its key (RFC 7523 2.2); to use a key remove client: public, else remove %s: %s", key, method)
	}
	return fmt.Sprintf("a public client has no secret to send with HTTP Basic; remove %s: %s", key, method)
}

// buildClientCertificate reads auth.oauth.client_certificate and checks it
// against the client authentication methods that need it.
func (b *builder) buildClientCertificate(o *OAuth, rc *rawClientCertificate) {
	const p = "/auth/oauth/client_certificate"
	for _, m := range []struct{ key, method string }{
		{"client_auth", o.TokenRequest.ClientAuth},
		{"refresh_client_auth", o.TokenRequest.RefreshClientAuth},
	} {
		if rc == nil && IsTLSClientAuth(m.method) && !o.Public { // a public client: buildOAuth says what is wrong
			b.errorf("/auth/oauth/token_request/"+m.key, "%s authenticates the client by the certificate it presents in the TLS handshake (RFC 8705 2); add auth.oauth.client_certificate with certificate: ${ClientCertificate} and private_key: ${ClientKey} (fields holding the PEMs, ${file:cert.pem} in a connection file)", m.method)
			return
		}
	}
	if rc == nil {
		return
	}
	cc := &ClientCertificate{APICalls: rc.APICalls}
	o.ClientCertificate = cc
	field := func(key, src string, secret bool, example, file string) *templates.Template {
		if src == "" {
			b.errorf(p, "missing %s: write %s: ${%s} with a field whose value is the PEM (${file:%s} in a connection file)", key, key, example, file)
			return nil
		}
		t := b.compile(p+"/"+key, src, templates.Text, scopeCertificate)
		if t == nil {
			return nil
		}
		ph := t.Placeholders()
		if len(ph) != 1 || src != "${"+ph[0].Name+"}" || ph[0].Var < NumBuiltinVars {
			b.errorf(p+"/"+key, "%s must be exactly one placeholder of a field holding the PEM (${%s}), so that its line breaks are kept and it is never written into the definition", key, example)
			return nil
		}
		if secret && b.def.vars.Flags(ph[0].Var)&templates.Secret == 0 {
			b.errorf(p+"/"+key, "${%s} holds a private key but is not a secret field; mark the field secret: true", ph[0].Name)
		}
		return t
	}
	cc.Certificate = field("certificate", rc.Certificate, false, "ClientCertificate", "cert.pem")
	cc.PrivateKey = field("private_key", rc.PrivateKey, true, "ClientKey", "key.pem")
}

func (c *ClientCertificate) templates() []*templates.Template {
	var out []*templates.Template
	for _, t := range []*templates.Template{c.Certificate, c.PrivateKey} {
		if t != nil {
			out = append(out, t)
		}
	}
	return out
}
