// Package webhooks applies a definition's webhooks section to a received
// delivery: it verifies the delivery (an HMAC signature or a shared secret,
// compared in constant time, with an optional timestamp tolerance) and
// reads its id, event type and attributing value from headers or the JSON
// body. It owns no state and sends nothing: the server's receiver stores
// what Verify accepted and Parse read. Sign makes what a provider would
// send, for tests and load generators.
package webhooks

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/connector-engine/connector/connector/server/internal/jsondepth"
	"github.com/connector-engine/connector/definitions"
)

// Reasons a delivery is refused (VerifyError.Reason).
const (
	ReasonNoSecret  = "no-secret"     // the receiver has no secret to verify with
	ReasonMissing   = "missing"       // the signature or secret header is absent
	ReasonMalformed = "malformed"     // it is not in the declared form (prefix, encoding)
	ReasonMismatch  = "mismatch"      // it does not match
	ReasonTimestamp = "timestamp"     // the timestamp header is absent or not Unix seconds
	ReasonTooOld    = "out-of-window" // the timestamp is further from now than the tolerance
)

// VerifyError says why a delivery was refused, in words that name the
// header but never a secret or the signature sent.
type VerifyError struct {
	Reason string
	Header string // the header concerned
	Detail string
}

func (e *VerifyError) Error() string { return e.Detail }

func refuse(reason, header, format string, args ...any) error {
	return &VerifyError{Reason: reason, Header: header, Detail: fmt.Sprintf(format, args...)}
}

// Verify checks that the delivery (its headers and raw body) comes from the
// provider, with any one of secrets (the current one, and a previous one
// during a rotation). now is the clock the tolerance is measured on. It
// returns nil or a *VerifyError.
func Verify(w *definitions.Webhooks, h http.Header, body []byte, secrets [][]byte, now time.Time) error {
	var keys [][]byte
	for _, s := range secrets {
		if len(s) > 0 {
			keys = append(keys, s)
		}
	}
	if len(keys) == 0 {
		header := ""
		if w.SharedSecret != nil {
			header = w.SharedSecret.Header
		} else if w.Signature != nil {
			header = w.Signature.Header
		}
		return refuse(ReasonNoSecret, header, "this receiver has no webhook secret yet; set one with PUT /v1/oauth-clients/{id}/webhook-secret")
	}
	switch {
	case w.SharedSecret != nil:
		return verifyShared(w.SharedSecret, h, keys)
	case w.Signature != nil:
		return verifySignature(w.Signature, h, body, keys, now)
	}
	return refuse(ReasonNoSecret, "", "the definition declares no way to verify deliveries")
}

func verifyShared(s *definitions.WebhookSharedSecret, h http.Header, keys [][]byte) error {
	vals := h.Values(s.Header)
	if len(vals) == 0 || vals[0] == "" {
		return refuse(ReasonMissing, s.Header, "the delivery has no %s header", s.Header)
	}
	if len(vals) > 1 {
		return refuse(ReasonMalformed, s.Header, "the delivery has %d %s headers; send one", len(vals), s.Header)
	}
	got := []byte(vals[0])
	ok := 0
	for _, k := range keys {
		want := append([]byte(s.Prefix), k...)
		// ConstantTimeCompare returns at once on a length difference; the
		// length of a secret is not what it protects.
		ok |= subtle.ConstantTimeCompare(got, want)
	}
	if ok != 1 {
		return refuse(ReasonMismatch, s.Header, "the %s header does not hold this receiver's webhook secret", s.Header)
	}
	return nil
}

func verifySignature(s *definitions.WebhookSignature, h http.Header, body []byte, keys [][]byte, now time.Time) error {
	var ts string
	var sent [][]byte
	if s.SignatureKey != "" {
		var err error
		if ts, sent, err = readPairs(s, h); err != nil {
			return err
		}
	} else if s.TimestampHeader != "" {
		ts = strings.TrimSpace(h.Get(s.TimestampHeader))
		if !unixSeconds(ts) {
			return refuse(ReasonTimestamp, s.TimestampHeader, "the %s header must hold the delivery's time in Unix seconds", s.TimestampHeader)
		}
	}
	if s.HasTimestamp() && s.Tolerance > 0 {
		sec, _ := strconv.ParseInt(ts, 10, 64)
		at := time.Unix(sec, 0)
		if d := now.Sub(at); d > s.Tolerance || d < -s.Tolerance {
			where := s.TimestampHeader
			if where == "" {
				where = s.Header
			}
			return refuse(ReasonTooOld, where, "the delivery's time (%s) is %s from the receiver's clock; at most %s is accepted", at.UTC().Format(time.RFC3339), d.Round(time.Second).Abs(), s.Tolerance)
		}
	}
	if s.SignatureKey == "" {
		vals := h.Values(s.Header)
		if len(vals) == 0 || vals[0] == "" {
			return refuse(ReasonMissing, s.Header, "the delivery has no %s header", s.Header)
		}
		// Several signatures (one per secret during a provider's rotation) may
		// come comma-separated or as repeated headers: any one may match.
		for _, v := range vals {
			for _, part := range strings.Split(v, ",") {
				part = strings.TrimSpace(part)
				raw, ok := strings.CutPrefix(part, s.Prefix)
				if !ok || raw == "" {
					continue
				}
				if mac, err := decode(s.Encoding, raw); err == nil && len(sent) < MaxSignatures {
					sent = append(sent, mac)
				}
			}
		}
		if len(sent) == 0 {
			how := s.Encoding
			if s.Prefix != "" {
				how = fmt.Sprintf("%q followed by %s", s.Prefix, s.Encoding)
			}
			return refuse(ReasonMalformed, s.Header, "the %s header is not a signature in the declared form (%s)", s.Header, how)
		}
	}
	ok := 0
	for _, k := range keys {
		want := mac(s, k, body, ts)
		for _, got := range sent {
			ok |= subtle.ConstantTimeCompare(got, want)
		}
	}
	if ok != 1 {
		return refuse(ReasonMismatch, s.Header, "the %s signature does not match the body (wrong secret, a changed body, or another algorithm than %s)", s.Header, s.Algorithm)
	}
	return nil
}

// MaxSignatures is how many signatures of one delivery are compared; a
// rotation sends two or three, so more is not a provider's delivery.
const MaxSignatures = 16

// unixSeconds reports whether s is a time in Unix seconds: digits only (no
// sign, no space: what is signed is the text as sent), at most 12 of them.
func unixSeconds(s string) bool {
	if s == "" || len(s) > 12 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Pairs is what a signature header of key=value pairs holds (Stripe's
// "t=1492774577,v1=5257a8…,v1=…,v0=…").
type Pairs struct {
	Timestamp  string   // the value of the timestamp pair; "" when there is none
	Signatures []string // the values of the signature pairs, as sent
}

// ParsePairs reads a signature header of comma-separated key=value pairs,
// the value of tsKey's pair ("" for none wanted) and of every sigKey pair.
// Pairs of other keys (Stripe's v0 test-mode signatures, a future scheme)
// are skipped, as Stripe says to. It is an error for the header to hold
// something that is not a pair, or a second timestamp (which one would be
// signed?), or more than MaxSignatures signatures.
func ParsePairs(header, tsKey, sigKey string) (Pairs, error) {
	var p Pairs
	seenTS := false
	for _, part := range strings.Split(header, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok || k == "" {
			return Pairs{}, fmt.Errorf("%q is not a key=value pair", truncate(part, 20))
		}
		switch k {
		case sigKey:
			if len(p.Signatures) == MaxSignatures {
				return Pairs{}, fmt.Errorf("more than %d %s signatures", MaxSignatures, sigKey)
			}
			p.Signatures = append(p.Signatures, v)
		case tsKey:
			if tsKey == "" {
				continue
			}
			if seenTS {
				return Pairs{}, fmt.Errorf("two %s pairs", tsKey)
			}
			p.Timestamp, seenTS = v, true
		}
	}
	return p, nil
}

// truncate shortens what a provider sent, for an error message (a
// malformed pair is never a signature the receiver could verify).
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// readPairs reads a key=value signature header: the timestamp's text and
// the decoded signatures.
func readPairs(s *definitions.WebhookSignature, h http.Header) (string, [][]byte, error) {
	vals := h.Values(s.Header)
	if len(vals) == 0 || strings.TrimSpace(vals[0]) == "" {
		return "", nil, refuse(ReasonMissing, s.Header, "the delivery has no %s header", s.Header)
	}
	if len(vals) > 1 {
		return "", nil, refuse(ReasonMalformed, s.Header, "the delivery has %d %s headers; send one", len(vals), s.Header)
	}
	p, err := ParsePairs(vals[0], s.TimestampKey, s.SignatureKey)
	if err != nil {
		return "", nil, refuse(ReasonMalformed, s.Header, "the %s header is not a list of key=value pairs as declared: %v", s.Header, err)
	}
	if s.TimestampKey != "" && !unixSeconds(p.Timestamp) {
		return "", nil, refuse(ReasonTimestamp, s.Header, "the %s header must hold the delivery's time in Unix seconds in its %s= pair", s.Header, s.TimestampKey)
	}
	var sent [][]byte
	for _, v := range p.Signatures {
		if mac, err := decode(s.Encoding, v); err == nil && len(mac) > 0 {
			sent = append(sent, mac)
		}
	}
	if len(sent) == 0 {
		return "", nil, refuse(ReasonMalformed, s.Header, "the %s header has no %s= pair with a %s signature", s.Header, s.SignatureKey, s.Encoding)
	}
	return p.Timestamp, sent, nil
}

func decode(encoding, s string) ([]byte, error) {
	if encoding == definitions.EncodingHex {
		return hex.DecodeString(strings.ToLower(s))
	}
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(s)
}

func mac(s *definitions.WebhookSignature, key, body []byte, ts string) []byte {
	var m hash.Hash
	if s.Algorithm == definitions.HMACSHA1 {
		m = hmac.New(sha1.New, key)
	} else {
		m = hmac.New(sha256.New, key)
	}
	if s.Signed == nil {
		m.Write(body)
		return m.Sum(nil)
	}
	for _, p := range s.Signed {
		switch {
		case p.Body:
			m.Write(body)
		case p.Timestamp:
			m.Write([]byte(ts))
		default:
			m.Write([]byte(p.Literal))
		}
	}
	return m.Sum(nil)
}

// Sign returns the headers a provider following s would send with body at
// time at, keyed with secret.
func Sign(s *definitions.WebhookSignature, secret, body []byte, at time.Time) http.Header {
	h := http.Header{}
	ts := strconv.FormatInt(at.Unix(), 10)
	if s.TimestampHeader != "" {
		h.Set(s.TimestampHeader, ts)
	}
	sum := mac(s, secret, body, ts)
	enc := hex.EncodeToString(sum)
	if s.Encoding == definitions.EncodingB64 {
		enc = base64.StdEncoding.EncodeToString(sum)
	}
	if s.SignatureKey != "" {
		v := s.SignatureKey + "=" + enc
		if s.TimestampKey != "" {
			v = s.TimestampKey + "=" + ts + "," + v
		}
		h.Set(s.Header, v)
		return h
	}
	h.Set(s.Header, s.Prefix+enc)
	return h
}

// Delivery is what Parse reads from a verified delivery.
type Delivery struct {
	// ID is the provider's delivery id, or "sha256:" and the hex SHA-256 of
	// the body when the definition names none or the delivery lacks it.
	ID        string
	EventType string // "" when not declared or absent
	// Attribute is the value compared with the connection field; "" when
	// not declared, absent or not matching the pattern.
	Attribute string
}

// Limits on what Parse reads from outside input.
const (
	MaxDepth   = 32  // JSON nesting of the body
	MaxIDBytes = 200 // a delivery id or event type longer than this is refused
)

// ErrNotJSON: the body is not one JSON value (every provider declared so
// far sends JSON; a form-encoded body is refused rather than half-read).
var ErrNotJSON = errors.New("the body is not a JSON value")

// ParseError is a delivery the receiver cannot read (a 400).
type ParseError struct{ Detail string }

func (e *ParseError) Error() string { return e.Detail }

// Parse reads the delivery's id, event type and attributing value. The body
// must be JSON (at most MaxDepth deep).
func Parse(w *definitions.Webhooks, h http.Header, body []byte) (Delivery, error) {
	if d := jsondepth.Of(body); d > MaxDepth {
		return Delivery{}, &ParseError{Detail: fmt.Sprintf("the body nests %d levels deep; at most %d are read", d, MaxDepth)}
	}
	var doc any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return Delivery{}, &ParseError{Detail: ErrNotJSON.Error() + ": " + err.Error()}
	}
	if _, err := dec.Token(); err == nil {
		return Delivery{}, &ParseError{Detail: ErrNotJSON.Error() + ": it holds more than one value"}
	}
	read := func(v definitions.WebhookValue) string {
		if v.Header != "" {
			return strings.TrimSpace(h.Get(v.Header))
		}
		if v.Path != "" {
			return lookup(doc, definitions.BodyPathKeys(v.Path))
		}
		return ""
	}
	var d Delivery
	d.ID = read(w.DeliveryID)
	if d.ID == "" {
		sum := sha256.Sum256(body)
		d.ID = "sha256:" + hex.EncodeToString(sum[:])
	}
	d.EventType = read(w.EventType)
	for what, v := range map[string]string{"delivery id": d.ID, "event type": d.EventType} {
		if len(v) > MaxIDBytes {
			return Delivery{}, &ParseError{Detail: fmt.Sprintf("the %s is %d bytes long; at most %d are accepted", what, len(v), MaxIDBytes)}
		}
	}
	if a := w.Attribute; a != nil {
		v := read(a.WebhookValue)
		if a.Pattern != nil {
			m := a.Pattern.FindStringSubmatch(v)
			v = ""
			if m != nil {
				v = m[1]
			}
		}
		d.Attribute = v
	}
	return d, nil
}

// lookup returns the scalar at keys in doc as text (a number as it was
// written), or "" when there is none.
func lookup(doc any, keys []string) string {
	for _, k := range keys {
		switch m := doc.(type) {
		case map[string]any:
			doc = m[k]
		case []any:
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i >= len(m) {
				return ""
			}
			doc = m[i]
		default:
			return ""
		}
	}
	switch v := doc.(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	case bool:
		return strconv.FormatBool(v)
	}
	return ""
}
