package fositeserver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"

	"github.com/ory/fosite"
)

// Mutual TLS (RFC 8705). With Options.ClientCAs the server speaks HTTPS
// only, and crypto/tls refuses every handshake without a client
// certificate that chains to ClientCAs (RequireAndVerifyClientCert), as a
// provider's mTLS endpoint does. Above that:
//
//   - a client with TLSSubject or TLSCertificate is authenticated by the
//     certificate (tls_client_auth, 2.1: the subject DN; or
//     self_signed_tls_client_auth, 2.2: the registered certificate
//     itself), plus its secret when it has one (ADP wants both);
//   - every token issued over mutual TLS is bound to the certificate (3):
//     the session keeps cnf {"x5t#S256": ...}, and /api/me answers 401
//     to a bound token presented with another certificate or none.
//
// fosite has no RFC 8705 support; its ClientAuthenticationStrategy hook
// and session Extra claims carry the two checks above, and everything
// else (grants, scopes, token storage, secrets) stays fosite's.

// tlsClient is what a client registered for certificate authentication
// must present.
type tlsClient struct {
	subject string // tls_client_auth: the certificate's subject DN, RFC 4514 form
	der     []byte // self_signed_tls_client_auth: the certificate itself
	secret  bool   // a secret is checked as well (by fosite)
}

// Thumbprint is a certificate's x5t#S256 (RFC 8705 3.1): the base64url
// SHA-256 of its DER encoding.
func Thumbprint(der []byte) string {
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// authenticateClient is fosite's client authentication with RFC 8705's
// methods in front: a certificate client must present its certificate;
// the others authenticate as fosite does.
func (s *Server) authenticateClient(ctx context.Context, r *http.Request, form url.Values) (fosite.Client, error) {
	id := form.Get("client_id")
	if user, _, ok := r.BasicAuth(); ok {
		if u, err := url.QueryUnescape(user); err == nil {
			id = u
		}
	}
	tc, ok := s.tlsClients[id]
	if !ok {
		return s.fosite.DefaultClientAuthenticationStrategy(ctx, r, form)
	}
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nil, fosite.ErrInvalidClient.WithHint("The client authenticates with a TLS client certificate, and the request came without one.")
	}
	leaf := r.TLS.PeerCertificates[0]
	switch {
	case tc.subject != "" && leaf.Subject.String() != tc.subject:
		return nil, fosite.ErrInvalidClient.WithHint("The client certificate's subject is not the one registered for the client.")
	case tc.der != nil && !bytes.Equal(leaf.Raw, tc.der):
		return nil, fosite.ErrInvalidClient.WithHint("The client certificate is not the one registered for the client.")
	}
	if tc.secret {
		return s.fosite.DefaultClientAuthenticationStrategy(ctx, r, form)
	}
	return s.store.GetClient(ctx, id)
}

// bindToCertificate binds the token about to be issued to the request's
// client certificate, if it has one.
func bindToCertificate(r *http.Request, ar fosite.AccessRequester) {
	sess, ok := ar.GetSession().(*fosite.DefaultSession)
	if !ok || r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return
	}
	if sess.Extra == nil {
		sess.Extra = map[string]any{}
	}
	sess.Extra["cnf"] = map[string]any{"x5t#S256": Thumbprint(r.TLS.PeerCertificates[0].Raw)}
}

// boundElsewhere reports whether a token with session sess is bound to a
// certificate the request r did not present (RFC 8705 3).
func boundElsewhere(r *http.Request, sess fosite.Session) bool {
	ds, ok := sess.(*fosite.DefaultSession)
	if !ok {
		return false
	}
	cnf, ok := ds.Extra["cnf"].(map[string]any)
	if !ok {
		return false
	}
	want, _ := cnf["x5t#S256"].(string)
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return true
	}
	return Thumbprint(r.TLS.PeerCertificates[0].Raw) != want
}

// notePeer records the subject of the request's client certificate.
func (s *Server) notePeer(r *http.Request) {
	subject := ""
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		subject = r.TLS.PeerCertificates[0].Subject.String()
	}
	s.peers = append(s.peers, subject)
}

// TokenRequestCertificates returns the subject of the client certificate
// of each token request so far, in order ("" for none).
func (s *Server) TokenRequestCertificates() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.peers...)
}
