package definitions

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Webhooks says how the provider's webhook deliveries are received (the
// definition's webhooks section): how one is verified (exactly one of
// Signature and SharedSecret), where its id, event type and attributing
// value are. The server's receiver (connector/server/webhooks) applies it.
type Webhooks struct {
	Signature    *WebhookSignature
	SharedSecret *WebhookSharedSecret
	// DeliveryID is where a delivery's id is, the same on every
	// redelivery of one event; zero means the SHA-256 of the body.
	DeliveryID WebhookValue
	// EventType is where the delivery's event type is; zero: none.
	EventType WebhookValue
	// Attribute says which connection a delivery belongs to; nil: none.
	Attribute *WebhookAttribute
}

// WebhookValue is a value of a delivery: a header, or a path into its JSON
// body (dotted, or a JSON Pointer; see BodyPathKeys). The zero value is
// "not declared".
type WebhookValue struct {
	Header string // canonical form is the caller's business
	Path   string
}

// IsZero reports whether the value is not declared.
func (v WebhookValue) IsZero() bool { return v.Header == "" && v.Path == "" }

// Signature algorithms and encodings.
const (
	HMACSHA256    = "hmac-sha256"
	HMACSHA1      = "hmac-sha1"
	EncodingHex   = "hex"
	EncodingB64   = "base64"
	SecretWebhook = "webhook_secret" // the OAuth client's webhook secret, set through the server's API
	SecretClient  = "client_secret"  // the OAuth client's own secret (Shopify signs with it)
)

// WebhookSignature is an HMAC the provider sends in Header: over the raw
// body, or over Signed, literal text around ${body} and ${timestamp}.
//
// With SignatureKey set, Header is a list of comma-separated key=value
// pairs (Stripe's "Stripe-Signature: t=1492774577,v1=5257a8…,v1=…"): the
// signatures are the values of every SignatureKey pair (several during a
// secret rotation), and the timestamp the value of the TimestampKey pair.
type WebhookSignature struct {
	Header    string
	Algorithm string // HMACSHA256 or HMACSHA1
	Encoding  string // EncodingHex or EncodingB64
	Prefix    string // before the signature in the header ("sha256=", "v0=")
	// Signed is what the HMAC covers, in order; nil means the body alone.
	Signed          []SignedPart
	TimestampHeader string        // the header with the delivery's time in Unix seconds
	Tolerance       time.Duration // how far that time may be from now; 0: not checked
	Secret          string        // SecretWebhook or SecretClient
	SignatureKey    string        // the key of the signature pairs in Header ("v1"); "": Header is the signature
	TimestampKey    string        // the key of the pair in Header with the time in Unix seconds ("t")
}

// HasTimestamp reports whether the delivery's time is declared, in a
// header of its own or in a pair of the signature header.
func (s *WebhookSignature) HasTimestamp() bool {
	return s.TimestampHeader != "" || s.TimestampKey != ""
}

// SignedPart is one piece of what a signature covers: Literal text, or
// (when Literal is "") the body or the timestamp header's value.
type SignedPart struct {
	Literal   string
	Body      bool
	Timestamp bool
}

// WebhookSharedSecret is the webhook secret itself, sent in Header after
// Prefix (Procore: the hook's Authorization header).
type WebhookSharedSecret struct {
	Header string
	Prefix string
}

// WebhookAttribute names the delivery's value that picks the connection:
// the connection of the receiving OAuth client whose Field holds it.
type WebhookAttribute struct {
	WebhookValue
	Field string // the definition's field name, as declared
	// Pattern, when set, must match the whole value; its first group is
	// what is compared (acme from acme.myshopify.com).
	Pattern *regexp.Regexp
}

type rawWebhooks struct {
	Signature *struct {
		Header          string `yaml:"header"`
		Algorithm       string `yaml:"algorithm"`
		Encoding        string `yaml:"encoding"`
		Prefix          string `yaml:"prefix"`
		Signed          string `yaml:"signed"`
		TimestampHeader string `yaml:"timestamp_header"`
		Tolerance       string `yaml:"tolerance"`
		Secret          string `yaml:"secret"`
		SignatureKey    string `yaml:"signature_key"`
		TimestampKey    string `yaml:"timestamp_key"`
	} `yaml:"signature"`
	SharedSecret *struct {
		Header string `yaml:"header"`
		Prefix string `yaml:"prefix"`
	} `yaml:"shared_secret"`
	DeliveryID *rawWebhookValue `yaml:"delivery_id"`
	EventType  *rawWebhookValue `yaml:"event_type"`
	Attribute  *struct {
		rawWebhookValue `yaml:",inline"`
		Field           string `yaml:"field"`
		Pattern         string `yaml:"pattern"`
	} `yaml:"attribute"`
}

type rawWebhookValue struct {
	Header string `yaml:"header"`
	Path   string `yaml:"path"`
}

// buildWebhooks reads the webhooks section; d.Webhooks stays nil when it is
// absent or broken.
func (b *builder) buildWebhooks() {
	n := resolve(b.given("/webhooks"))
	if n == nil {
		return
	}
	var rw rawWebhooks
	_ = n.Decode(&rw) // type errors come from the schema
	w := &Webhooks{}
	ok := true
	switch {
	case rw.Signature == nil && rw.SharedSecret == nil:
		b.errorf("/webhooks", "webhooks needs a way to verify deliveries: signature (an HMAC the provider sends) or shared_secret (a secret the provider sends in a header); the receiver refuses what it cannot verify")
		ok = false
	case rw.Signature != nil && rw.SharedSecret != nil:
		b.errorf("/webhooks/shared_secret", "a delivery is verified by signature or by shared_secret, not both; remove one")
		ok = false
	}
	if rs := rw.Signature; rs != nil {
		s := &WebhookSignature{Header: rs.Header, Algorithm: rs.Algorithm, Encoding: rs.Encoding, Prefix: rs.Prefix, TimestampHeader: rs.TimestampHeader, Secret: rs.Secret,
			SignatureKey: rs.SignatureKey, TimestampKey: rs.TimestampKey}
		if s.Secret == "" {
			s.Secret = SecretWebhook
		}
		if !b.checkPairs(s) {
			ok = false
		}
		if rs.Signed != "" {
			parts, msg := parseSigned(rs.Signed)
			if msg != "" {
				b.errorf("/webhooks/signature/signed", "%s", msg)
				ok = false
			}
			s.Signed = parts
			for _, p := range parts {
				if p.Timestamp && !s.HasTimestamp() {
					b.errorf("/webhooks/signature/signed", "signed uses ${timestamp}, which is the value of timestamp_header (or of the timestamp_key pair of the signature header); add timestamp_header (such as X-Slack-Request-Timestamp) or timestamp_key")
					ok = false
				}
			}
		}
		if rs.Tolerance != "" {
			dur, err := time.ParseDuration(rs.Tolerance)
			switch {
			case err != nil || dur <= 0:
				b.errorf("/webhooks/signature/tolerance", "%q is not a positive duration such as 5m", rs.Tolerance)
				ok = false
			case !s.HasTimestamp():
				b.errorf("/webhooks/signature/tolerance", "tolerance bounds the age of timestamp_header's value (or of the timestamp_key pair's), but there is neither; add one or remove tolerance")
				ok = false
			default:
				s.Tolerance = dur
			}
		}
		tsPtr, tsName := "/webhooks/signature/timestamp_header", "timestamp_header"
		if rs.TimestampKey != "" {
			tsPtr, tsName = "/webhooks/signature/timestamp_key", "timestamp_key"
		}
		if s.HasTimestamp() && rs.Tolerance == "" && !signs(s.Signed, func(p SignedPart) bool { return p.Timestamp }) {
			b.errorf(tsPtr, "%s is read only for ${timestamp} in signed and for tolerance, and neither is given; add them or remove %s", tsName, tsName)
			ok = false
		}
		if s.HasTimestamp() && rs.Tolerance == "" && ok {
			b.warnf(warnWebhookNoTolerance, tsPtr, "the timestamp is signed but its age is not checked: a captured delivery can be replayed later (de-duplication catches only the same delivery id); add tolerance, such as 5m")
		}
		if s.Signed != nil && !signs(s.Signed, func(p SignedPart) bool { return p.Body }) {
			b.errorf("/webhooks/signature/signed", "signed does not include ${body}: a signature that does not cover the body lets anyone change it; include ${body}")
			ok = false
		}
		if s.Algorithm == HMACSHA1 {
			b.warnf(warnWebhookHMACSHA1, "/webhooks/signature/algorithm", "HMAC-SHA1 is still unbroken as a MAC but deprecated; use hmac-sha256 if the provider offers it")
		}
		w.Signature = s
	}
	if rs := rw.SharedSecret; rs != nil {
		w.SharedSecret = &WebhookSharedSecret{Header: rs.Header, Prefix: rs.Prefix}
	}
	value := func(ptr string, rv *rawWebhookValue) WebhookValue {
		if rv == nil {
			return WebhookValue{}
		}
		switch {
		case rv.Header == "" && rv.Path == "":
			b.errorf(ptr, "say where the value is: header (a header name) or path (a path into the JSON body, such as company_id)")
			ok = false
		case rv.Header != "" && rv.Path != "":
			b.errorf(ptr+"/path", "the value is in a header or in the body, not both; remove header or path")
			ok = false
		case rv.Path != "":
			if msg := BodyPathProblem(rv.Path); msg != "" {
				b.errorf(ptr+"/path", "%s", msg)
				ok = false
			}
		}
		return WebhookValue{Header: rv.Header, Path: rv.Path}
	}
	w.DeliveryID = value("/webhooks/delivery_id", rw.DeliveryID)
	w.EventType = value("/webhooks/event_type", rw.EventType)
	if ra := rw.Attribute; ra != nil {
		a := &WebhookAttribute{WebhookValue: value("/webhooks/attribute", &ra.rawWebhookValue), Field: ra.Field}
		if ra.Field != "" {
			if f, found := b.def.Field(ra.Field); !found {
				b.errorf("/webhooks/attribute/field", "%s", b.unknownField(ra.Field))
				ok = false
			} else if f.Secret {
				b.errorf("/webhooks/attribute/field", "field %s is secret; a delivery is attributed by a value the provider sends in the clear (a company or account id), never by a secret", f.Name)
				ok = false
			} else {
				a.Field = f.Name
			}
		}
		if ra.Pattern != "" {
			_, err := regexp.Compile(ra.Pattern) // for a message naming what was written
			re, _ := regexp.Compile("^(?:" + ra.Pattern + ")$")
			switch {
			case err != nil || re == nil:
				b.errorf("/webhooks/attribute/pattern", "not a valid regular expression: %v", err)
				ok = false
			case re.NumSubexp() < 1:
				b.errorf("/webhooks/attribute/pattern", "the pattern has no group; its first group (...) is the part compared with the field, such as ([a-z0-9-]+)\\.myshopify\\.com")
				ok = false
			default:
				a.Pattern = re
			}
		}
		w.Attribute = a
	}
	if ok {
		b.def.Webhooks = w
	}
}

// checkPairs checks signature_key and timestamp_key, which say that the
// signature header is a list of key=value pairs.
func (b *builder) checkPairs(s *WebhookSignature) bool {
	ok := true
	switch {
	case s.TimestampKey != "" && s.SignatureKey == "":
		b.errorf("/webhooks/signature/timestamp_key", "timestamp_key names a pair of the signature header, which is a list of pairs only with signature_key; add signature_key (such as v1) or use timestamp_header")
		ok = false
	case s.TimestampKey != "" && s.TimestampHeader != "":
		b.errorf("/webhooks/signature/timestamp_key", "the delivery's time is in the timestamp_key pair of the signature header or in timestamp_header, not both; remove one")
		ok = false
	case s.TimestampKey != "" && s.TimestampKey == s.SignatureKey:
		b.errorf("/webhooks/signature/timestamp_key", "timestamp_key and signature_key are both %q; the time and the signatures are different pairs (Stripe: t and v1)", s.TimestampKey)
		ok = false
	}
	if s.SignatureKey != "" && s.Prefix != "" {
		b.errorf("/webhooks/signature/prefix", "with signature_key the signatures are the values of its pairs (v1=…); prefix does not apply; remove it")
		ok = false
	}
	return ok
}

// unknownField words a reference to a field the definition lacks.
func (b *builder) unknownField(name string) string {
	var names []string
	for _, f := range b.def.Fields {
		names = append(names, f.Name)
	}
	if len(names) == 0 {
		return fmt.Sprintf("the definition has no field %q (it declares no fields); attribute.field names the connection field the delivery's value is compared with", name)
	}
	msg := fmt.Sprintf("the definition has no field %q", name)
	if s := suggest(name, names); s != "" {
		return msg + fmt.Sprintf("; did you mean %q?", s)
	}
	return msg + "; its fields are " + strings.Join(names, ", ")
}

func signs(parts []SignedPart, f func(SignedPart) bool) bool {
	for _, p := range parts {
		if f(p) {
			return true
		}
	}
	return false
}

// parseSigned reads a signed template: literal text, ${body} and
// ${timestamp}; $$ is a literal $.
func parseSigned(s string) ([]SignedPart, string) {
	var parts []SignedPart
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			parts = append(parts, SignedPart{Literal: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		if s[i] != '$' {
			lit.WriteByte(s[i])
			continue
		}
		if strings.HasPrefix(s[i:], "$$") {
			lit.WriteByte('$')
			i++
			continue
		}
		if !strings.HasPrefix(s[i:], "${") {
			lit.WriteByte('$')
			continue
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return nil, fmt.Sprintf("unclosed \"${\" at offset %d; write ${body} or ${timestamp}", i)
		}
		name := s[i+2 : i+end]
		flush()
		switch name {
		case "body":
			parts = append(parts, SignedPart{Body: true})
		case "timestamp":
			parts = append(parts, SignedPart{Timestamp: true})
		default:
			return nil, fmt.Sprintf("unknown placeholder ${%s}; signed knows ${body} (the raw body) and ${timestamp} (timestamp_header's value)", name)
		}
		i += end
	}
	flush()
	return parts, ""
}
