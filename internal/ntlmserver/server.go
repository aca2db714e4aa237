// Package ntlmserver is a loopback HTTP server that authenticates clients
// with NTLM the way IIS does, for tests of the ntlm scheme against a real
// server side: it issues challenges and verifies NTLMv2 responses against
// the accounts' passwords, by [MS-NLMP] (Microsoft's NT LAN Manager
// Authentication Protocol specification):
//
//   - 2.2.1.1 NEGOTIATE_MESSAGE, 2.2.1.2 CHALLENGE_MESSAGE and 2.2.1.3
//     AUTHENTICATE_MESSAGE: the three messages, base64 in the Authorization
//     and WWW-Authenticate headers (the NTLM and Negotiate schemes of RFC
//     4559 section 4);
//   - 2.2.2.1 AV_PAIR: the challenge's target information (names and
//     MsvAvTimestamp), which the client's NTLMv2 response must echo;
//   - 2.2.2.7 NTLMv2_CLIENT_CHALLENGE and 3.3.2 NTLM v2 Authentication:
//     NTOWFv2(password, user, domain) = HMAC_MD5(MD4(UNICODE(password)),
//     UNICODE(Uppercase(user) || domain)), and NTProofStr =
//     HMAC_MD5(NTOWFv2, ServerChallenge || temp), which the server
//     recomputes and compares;
//   - 3.2.5.1.2 the server receiving the AUTHENTICATE_MESSAGE.
//
// Like IIS it authenticates a TCP connection: the challenge belongs to the
// connection it was sent on, an authenticate message on another connection
// is refused, and once authenticated the connection's later requests need no
// handshake. It has no LM, NTLMv1, key exchange, signing or sealing: the
// client under test speaks NTLMv2 only. Not for production: it is a test
// double of a Windows server, with passwords in memory.
package ntlmserver

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf16"

	"golang.org/x/crypto/md4"
)

// Server is the loopback NTLM server. Next serves the requests of
// authenticated connections; User(r) names their account.
type Server struct {
	*httptest.Server
	Domain   string            // the server's NetBIOS domain, in its challenge
	accounts map[string]string // DOMAIN\USER (upper case) -> password
	next     http.Handler

	Handshakes atomic.Int64 // authenticate messages accepted
	Refused    atomic.Int64 // authenticate messages refused
	Conns      atomic.Int64 // TCP connections accepted
	OffConn    atomic.Int64 // authenticate messages on a connection without a challenge
}

type ctxKey struct{}

// conn is one TCP connection's NTLM state.
type conn struct {
	id         int64
	mu         sync.Mutex
	challenge  []byte // the pending server challenge; nil when none
	targetInfo []byte
	user       string // the authenticated account; "" before
}

// Start runs a server with the accounts (DOMAIN\user or user, to password)
// until the test ends; next serves authenticated requests.
func Start(t testing.TB, domain string, accounts map[string]string, next http.Handler) *Server {
	s := &Server{Domain: domain, accounts: map[string]string{}, next: next}
	for a, p := range accounts {
		s.accounts[strings.ToUpper(a)] = p
	}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.Server.Config.ConnContext = func(ctx context.Context, _ net.Conn) context.Context {
		return context.WithValue(ctx, ctxKey{}, &conn{id: s.Conns.Add(1)})
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// User is the account an authenticated request's connection signed in as.
func User(r *http.Request) string {
	c, _ := r.Context().Value(ctxKey{}).(*conn)
	if c == nil {
		return ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.user
}

// ConnID numbers the request's TCP connection (from 1).
func ConnID(r *http.Request) int64 {
	c, _ := r.Context().Value(ctxKey{}).(*conn)
	if c == nil {
		return 0
	}
	return c.id
}

func (s *Server) challengeAgain(w http.ResponseWriter, msg string) {
	w.Header().Add("WWW-Authenticate", "NTLM")
	w.Header().Add("WWW-Authenticate", "Negotiate")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusUnauthorized)
	fmt.Fprintln(w, msg)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	c := r.Context().Value(ctxKey{}).(*conn)
	h := r.Header.Get("Authorization")
	scheme, b64, _ := strings.Cut(h, " ")
	if h == "" || !strings.EqualFold(scheme, "NTLM") && !strings.EqualFold(scheme, "Negotiate") {
		c.mu.Lock()
		authed := c.user != ""
		c.mu.Unlock()
		if authed {
			s.next.ServeHTTP(w, r)
			return
		}
		s.challengeAgain(w, "NTLM authentication required")
		return
	}
	msg, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
	if err != nil || len(msg) < 12 || !bytes.Equal(msg[:8], signature) {
		s.challengeAgain(w, "the Authorization header is not an NTLM message")
		return
	}
	switch binary.LittleEndian.Uint32(msg[8:12]) {
	case 1:
		s.negotiate(w, c, scheme, msg)
	case 3:
		user, err := s.authenticate(c, msg)
		if err != nil {
			s.Refused.Add(1)
			s.challengeAgain(w, err.Error())
			return
		}
		s.Handshakes.Add(1)
		c.mu.Lock()
		c.user = user
		c.mu.Unlock()
		s.next.ServeHTTP(w, r)
	default:
		s.challengeAgain(w, "unexpected NTLM message type")
	}
}

var signature = []byte("NTLMSSP\x00")

// Negotiate flags (2.2.2.5) the server's challenge sets.
const (
	flagUnicode    = 1 << 0
	flagReqTarget  = 1 << 2
	flagNTLM       = 1 << 9
	flagAlwaysSign = 1 << 15
	flagTypeDomain = 1 << 16
	flagESS        = 1 << 19 // extended session security
	flagTargetInfo = 1 << 23
	flag128        = 1 << 29
	flag56         = 1 << 31
)

// negotiate answers a NEGOTIATE_MESSAGE (2.2.1.1) with a CHALLENGE_MESSAGE
// (2.2.1.2) bound to this connection.
func (s *Server) negotiate(w http.ResponseWriter, c *conn, scheme string, msg []byte) {
	if len(msg) < 16 || binary.LittleEndian.Uint32(msg[12:16])&flagUnicode == 0 {
		s.challengeAgain(w, "the negotiate message does not offer Unicode")
		return
	}
	challenge := make([]byte, 8)
	_, _ = rand.Read(challenge)
	// 2.2.2.1: NetBIOS domain and computer names, DNS names, the time.
	var ti bytes.Buffer
	av := func(id uint16, v []byte) {
		_ = binary.Write(&ti, binary.LittleEndian, id)
		_ = binary.Write(&ti, binary.LittleEndian, uint16(len(v)))
		ti.Write(v)
	}
	av(2, unicode(s.Domain))
	av(1, unicode("LOOPBACK"))
	av(4, unicode(strings.ToLower(s.Domain)+".test"))
	av(3, unicode("loopback."+strings.ToLower(s.Domain)+".test"))
	ts := make([]byte, 8)
	binary.LittleEndian.PutUint64(ts, uint64(time.Now().UnixNano()/100)+116444736000000000) // FILETIME
	av(7, ts)
	av(0, nil)

	target := unicode(s.Domain)
	const header = 48
	out := make([]byte, header, header+len(target)+ti.Len())
	copy(out, signature)
	binary.LittleEndian.PutUint32(out[8:], 2)
	putField(out[12:], len(target), header)
	binary.LittleEndian.PutUint32(out[20:], flagUnicode|flagReqTarget|flagNTLM|flagAlwaysSign|flagTypeDomain|flagESS|flagTargetInfo|flag128|flag56)
	copy(out[24:32], challenge)
	putField(out[40:], ti.Len(), header+len(target))
	out = append(append(out, target...), ti.Bytes()...)

	c.mu.Lock()
	c.challenge, c.targetInfo, c.user = challenge, ti.Bytes(), ""
	c.mu.Unlock()
	w.Header().Set("WWW-Authenticate", scheme+" "+base64.StdEncoding.EncodeToString(out))
	w.WriteHeader(http.StatusUnauthorized)
}

// authenticate checks an AUTHENTICATE_MESSAGE (2.2.1.3) against the
// connection's challenge and the account's password (3.2.5.1.2, 3.3.2),
// and returns the account. The challenge is used once.
func (s *Server) authenticate(c *conn, msg []byte) (string, error) {
	c.mu.Lock()
	challenge, targetInfo := c.challenge, c.targetInfo
	c.challenge, c.targetInfo = nil, nil
	c.mu.Unlock()
	if challenge == nil {
		s.OffConn.Add(1)
		return "", errors.New("NTLM authenticate message on a connection that was sent no challenge: the handshake must stay on one TCP connection")
	}
	if len(msg) < 64 {
		return "", errors.New("the authenticate message is too short")
	}
	nt, err1 := field(msg, 20)
	domain, err2 := field(msg, 28)
	user, err3 := field(msg, 36)
	if err := errors.Join(err1, err2, err3); err != nil {
		return "", err
	}
	account := strings.ToUpper(fromUnicode(user))
	if d := fromUnicode(domain); d != "" {
		account = strings.ToUpper(d) + `\` + account
	}
	password, ok := s.accounts[account]
	if !ok {
		return "", fmt.Errorf("no account %s", account)
	}
	// 2.2.2.8 NTLMv2_RESPONSE: NTProofStr (16 bytes), then the client
	// challenge (2.2.2.7): RespType 1, HiRespType 1, 6 reserved bytes,
	// TimeStamp, ChallengeFromClient, 4 reserved bytes, AvPairs, 4 zero bytes.
	if len(nt) < 16+28+4 || nt[16] != 1 || nt[17] != 1 {
		return "", errors.New("the NT response is not an NTLMv2 response; only NTLMv2 is accepted")
	}
	proof, temp := nt[:16], nt[16:]
	if !bytes.HasPrefix(temp[28:], targetInfo) {
		return "", errors.New("the NTLMv2 response does not carry this server's target information")
	}
	key := hmacMD5(ntHash(password), unicode(strings.ToUpper(fromUnicode(user))+fromUnicode(domain))) // NTOWFv2
	if !hmac.Equal(proof, hmacMD5(key, challenge, temp)) {
		return "", fmt.Errorf("the NTLMv2 response of %s does not match its password", account)
	}
	return account, nil
}

// putField writes a length/maxlength/offset triple (2.2.1.2).
func putField(b []byte, n, offset int) {
	binary.LittleEndian.PutUint16(b, uint16(n))
	binary.LittleEndian.PutUint16(b[2:], uint16(n))
	binary.LittleEndian.PutUint32(b[4:], uint32(offset))
}

// field reads the payload a length/maxlength/offset triple at at points to.
func field(msg []byte, at int) ([]byte, error) {
	n := int(binary.LittleEndian.Uint16(msg[at:]))
	off := int(binary.LittleEndian.Uint32(msg[at+4:]))
	if off < 0 || off > len(msg) || n > len(msg)-off {
		return nil, errors.New("the authenticate message has a field outside the message")
	}
	return msg[off : off+n], nil
}

func ntHash(password string) []byte {
	h := md4.New()
	h.Write(unicode(password))
	return h.Sum(nil)
}

func hmacMD5(key []byte, data ...[]byte) []byte {
	m := hmac.New(md5.New, key)
	for _, d := range data {
		m.Write(d)
	}
	return m.Sum(nil)
}

// unicode is UTF-16LE, NTLM's UNICODE().
func unicode(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	return b
}

func fromUnicode(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return string(utf16.Decode(u))
}
