package webhooks_test

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"hash"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/server/webhooks"
	"github.com/connector-engine/connector/definitions"
)

func def(t testing.TB, section string) *definitions.Webhooks {
	t.Helper()
	src := `name: acme
title: Acme
base_url: https://api.acme.test
auth: {scheme: none}
fields:
  CompanyId: {type: integer}
  Shop: {type: host_label}
webhooks:
` + section
	set, err := definitions.Parse(definitions.Builtin(), definitions.File{Path: "acme.yaml", Data: []byte(src)})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := set.Lookup("acme")
	return d.Webhooks
}

const (
	shopify = `  signature: {header: X-Shopify-Hmac-Sha256, algorithm: hmac-sha256, encoding: base64}
  delivery_id: {header: X-Shopify-Webhook-Id}
  event_type: {header: X-Shopify-Topic}
  attribute: {header: X-Shopify-Shop-Domain, field: Shop, pattern: '([a-z0-9-]+)\.myshopify\.com'}
`
	slack = `  signature: {header: X-Slack-Signature, algorithm: hmac-sha256, encoding: hex, prefix: v0=, signed: 'v0:${timestamp}:${body}', timestamp_header: X-Slack-Request-Timestamp, tolerance: 5m}
  delivery_id: {path: event_id}
  event_type: {path: event.type}
`
	github = `  signature: {header: X-Hub-Signature, algorithm: hmac-sha1, encoding: hex, prefix: sha1=}
`
	procore = `  shared_secret: {header: Authorization, prefix: "Bearer "}
  delivery_id: {path: id}
  event_type: {path: event_type}
  attribute: {path: company_id, field: CompanyId}
`
)

var (
	secret   = []byte("whsec-0123456789abcdef")
	previous = []byte("whsec-previous-secret-99")
	now      = time.Unix(1_800_000_000, 0)
	body     = []byte(`{"id":4242,"event_id":"Ev01","company_id":1234567890123,"event_type":"create","event":{"type":"message"}}`)
)

func hmacOf(h func() hashT, key []byte, parts ...string) []byte {
	m := hmac.New(h, key)
	for _, p := range parts {
		m.Write([]byte(p))
	}
	return m.Sum(nil)
}

type hashT = hash.Hash

// TestVerify: every way a delivery is accepted or refused, for a body
// signature (Shopify), a timestamped one (Slack), SHA-1 (GitHub's legacy
// header) and a shared secret (Procore). The expected signatures are
// computed here with crypto/hmac, independently of Sign.
func TestVerify(t *testing.T) {
	sha256B64 := func(key []byte, b []byte) string {
		return base64.StdEncoding.EncodeToString(hmacOf(func() hashT { return sha256.New() }, key, string(b)))
	}
	ts := "1800000000"
	slackSig := func(key []byte, ts string, b []byte) string {
		return "v0=" + hex.EncodeToString(hmacOf(func() hashT { return sha256.New() }, key, "v0:", ts, ":", string(b)))
	}
	sha1Hex := "sha1=" + hex.EncodeToString(hmacOf(func() hashT { return sha1.New() }, secret, string(body)))
	rows := []struct {
		name    string
		section string
		headers map[string]string
		body    []byte
		secrets [][]byte
		reason  string // "" accepted
	}{
		{"shopify good", shopify, map[string]string{"X-Shopify-Hmac-Sha256": sha256B64(secret, body)}, body, nil, ""},
		{"shopify unpadded base64", shopify, map[string]string{"X-Shopify-Hmac-Sha256": strings.TrimRight(sha256B64(secret, body), "=")}, body, nil, ""},
		{"shopify previous secret during rotation", shopify, map[string]string{"X-Shopify-Hmac-Sha256": sha256B64(previous, body)}, body, [][]byte{secret, previous}, ""},
		{"shopify wrong secret", shopify, map[string]string{"X-Shopify-Hmac-Sha256": sha256B64([]byte("another-secret"), body)}, body, nil, webhooks.ReasonMismatch},
		{"shopify changed body", shopify, map[string]string{"X-Shopify-Hmac-Sha256": sha256B64(secret, body)}, append([]byte(" "), body...), nil, webhooks.ReasonMismatch},
		{"shopify missing header", shopify, nil, body, nil, webhooks.ReasonMissing},
		{"shopify not base64", shopify, map[string]string{"X-Shopify-Hmac-Sha256": "%%%"}, body, nil, webhooks.ReasonMalformed},
		{"shopify hex where base64 is declared", shopify, map[string]string{"X-Shopify-Hmac-Sha256": hex.EncodeToString(hmacOf(func() hashT { return sha256.New() }, secret, string(body)))}, body, nil, webhooks.ReasonMismatch},
		{"shopify wrong algorithm (sha1)", shopify, map[string]string{"X-Shopify-Hmac-Sha256": base64.StdEncoding.EncodeToString(hmacOf(func() hashT { return sha1.New() }, secret, string(body)))}, body, nil, webhooks.ReasonMismatch},
		{"no secret configured", shopify, map[string]string{"X-Shopify-Hmac-Sha256": sha256B64(nil, body)}, body, [][]byte{}, webhooks.ReasonNoSecret},
		{"slack good", slack, map[string]string{"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": slackSig(secret, ts, body)}, body, nil, ""},
		{"slack upper-case hex", slack, map[string]string{"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": "v0=" + strings.ToUpper(strings.TrimPrefix(slackSig(secret, ts, body), "v0="))}, body, nil, ""},
		{"slack several signatures, one good", slack, map[string]string{"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": "v0=00ff, " + slackSig(secret, ts, body)}, body, nil, ""},
		{"slack without prefix", slack, map[string]string{"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": strings.TrimPrefix(slackSig(secret, ts, body), "v0=")}, body, nil, webhooks.ReasonMalformed},
		{"slack timestamp changed after signing", slack, map[string]string{"X-Slack-Request-Timestamp": "1800000001", "X-Slack-Signature": slackSig(secret, ts, body)}, body, nil, webhooks.ReasonMismatch},
		{"slack replayed 10 minutes later", slack, map[string]string{"X-Slack-Request-Timestamp": "1799999400", "X-Slack-Signature": slackSig(secret, "1799999400", body)}, body, nil, webhooks.ReasonTooOld},
		{"slack from the future", slack, map[string]string{"X-Slack-Request-Timestamp": "1800000400", "X-Slack-Signature": slackSig(secret, "1800000400", body)}, body, nil, webhooks.ReasonTooOld},
		{"slack within tolerance", slack, map[string]string{"X-Slack-Request-Timestamp": "1799999760", "X-Slack-Signature": slackSig(secret, "1799999760", body)}, body, nil, ""},
		{"slack timestamp missing", slack, map[string]string{"X-Slack-Signature": slackSig(secret, "", body)}, body, nil, webhooks.ReasonTimestamp},
		{"slack timestamp not seconds", slack, map[string]string{"X-Slack-Request-Timestamp": "2026-12-02T10:00:00Z", "X-Slack-Signature": slackSig(secret, ts, body)}, body, nil, webhooks.ReasonTimestamp},
		{"sha1 good", github, map[string]string{"X-Hub-Signature": sha1Hex}, body, nil, ""},
		{"sha1 where the body changed", github, map[string]string{"X-Hub-Signature": sha1Hex}, []byte(`{}`), nil, webhooks.ReasonMismatch},
		{"procore good", procore, map[string]string{"Authorization": "Bearer " + string(secret)}, body, nil, ""},
		{"procore previous secret", procore, map[string]string{"Authorization": "Bearer " + string(previous)}, body, [][]byte{secret, previous}, ""},
		{"procore wrong secret", procore, map[string]string{"Authorization": "Bearer whsec-0123456789abcdeF"}, body, nil, webhooks.ReasonMismatch},
		{"procore secret as a prefix", procore, map[string]string{"Authorization": "Bearer " + string(secret) + "x"}, body, nil, webhooks.ReasonMismatch},
		{"procore without the prefix", procore, map[string]string{"Authorization": string(secret)}, body, nil, webhooks.ReasonMismatch},
		{"procore missing", procore, nil, body, nil, webhooks.ReasonMissing},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range r.headers {
				h.Set(k, v)
			}
			secrets := r.secrets
			if secrets == nil {
				secrets = [][]byte{secret}
			}
			err := webhooks.Verify(def(t, r.section), h, r.body, secrets, now)
			if r.reason == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var ve *webhooks.VerifyError
			if !errors.As(err, &ve) || ve.Reason != r.reason {
				t.Fatalf("got %v, want reason %s", err, r.reason)
			}
			for _, s := range append(secrets, secret, previous) {
				if len(s) > 0 && strings.Contains(err.Error(), string(s)) {
					t.Fatalf("the error shows a secret: %v", err)
				}
			}
			if sent := r.headers["X-Shopify-Hmac-Sha256"] + r.headers["X-Slack-Signature"]; len(sent) > 8 && strings.Contains(err.Error(), sent) {
				t.Fatalf("the error repeats the signature sent: %v", err)
			}
		})
	}
}

// TestSignVerifies: what Sign makes, Verify accepts, for each form.
func TestSignVerifies(t *testing.T) {
	for _, section := range []string{shopify, slack, github} {
		w := def(t, section)
		h := webhooks.Sign(w.Signature, secret, body, now)
		if err := webhooks.Verify(w, h, body, [][]byte{secret}, now); err != nil {
			t.Errorf("%s: %v", w.Signature.Header, err)
		}
		if err := webhooks.Verify(w, h, body, [][]byte{previous}, now); err == nil {
			t.Errorf("%s: another secret verifies", w.Signature.Header)
		}
	}
}

func TestParse(t *testing.T) {
	rows := []struct {
		name, section string
		headers       map[string]string
		body          string
		want          webhooks.Delivery
		err           string
	}{
		{"procore", procore, nil, `{"id":4242,"company_id":1234567890123,"event_type":"create"}`, webhooks.Delivery{ID: "4242", EventType: "create", Attribute: "1234567890123"}, ""},
		{"procore string ids", procore, nil, `{"id":"01HX","company_id":"77","event_type":"update"}`, webhooks.Delivery{ID: "01HX", EventType: "update", Attribute: "77"}, ""},
		{"procore without company", procore, nil, `{"id":1,"event_type":"delete"}`, webhooks.Delivery{ID: "1", EventType: "delete"}, ""},
		{"procore company is an object", procore, nil, `{"id":1,"company_id":{"id":5}}`, webhooks.Delivery{ID: "1"}, ""},
		{"id missing: body hash", procore, nil, `{"company_id":5}`, webhooks.Delivery{ID: "sha256:" + sha256Hex(`{"company_id":5}`), Attribute: "5"}, ""},
		{"slack nested path", slack, nil, `{"event_id":"Ev1","event":{"type":"message"}}`, webhooks.Delivery{ID: "Ev1", EventType: "message"}, ""},
		{"shopify headers and pattern", shopify, map[string]string{"X-Shopify-Webhook-Id": "b54557e4", "X-Shopify-Topic": "orders/create", "X-Shopify-Shop-Domain": "acme.myshopify.com"}, `{}`, webhooks.Delivery{ID: "b54557e4", EventType: "orders/create", Attribute: "acme"}, ""},
		{"shopify domain not matching", shopify, map[string]string{"X-Shopify-Webhook-Id": "b5", "X-Shopify-Shop-Domain": "acme.myshopify.com.evil.test"}, `{}`, webhooks.Delivery{ID: "b5"}, ""},
		{"not JSON", procore, nil, `id=1&company_id=2`, webhooks.Delivery{}, "not a JSON value"},
		{"two JSON values", procore, nil, `{"id":1} {"id":2}`, webhooks.Delivery{}, "more than one value"},
		{"too deep", procore, nil, strings.Repeat("[", 40) + strings.Repeat("]", 40), webhooks.Delivery{}, "nests 40 levels"},
		{"id too long", procore, nil, `{"id":"` + strings.Repeat("x", 300) + `"}`, webhooks.Delivery{}, "delivery id is 300 bytes"},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range r.headers {
				h.Set(k, v)
			}
			got, err := webhooks.Parse(def(t, r.section), h, []byte(r.body))
			if r.err != "" {
				if err == nil || !strings.Contains(err.Error(), r.err) {
					t.Fatalf("got %+v, %v; want an error containing %q", got, err, r.err)
				}
				return
			}
			if err != nil || got != r.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, r.want)
			}
		})
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// FuzzParseVerify: no body or header makes Parse or Verify panic, and a
// delivery Verify accepts for one secret is refused for another.
func FuzzParseVerify(f *testing.F) {
	f.Add([]byte(`{"id":1,"company_id":2,"event_type":"create"}`), "Bearer x", "v0=00")
	f.Add([]byte(`[[[[{"a":"\u0000"}]]]]`), "", "")
	f.Add([]byte(`{"event":{"type":1.5e300}}`), "Bearer", "v0=zz,v0=")
	w1, w2 := def(f, procore), def(f, slack)
	f.Fuzz(func(t *testing.T, b []byte, auth, sig string) {
		h := http.Header{"Authorization": {auth}, "X-Slack-Signature": {sig}, "X-Slack-Request-Timestamp": {"1800000000"}}
		for _, w := range []*definitions.Webhooks{w1, w2} {
			_, _ = webhooks.Parse(w, h, b)
			if webhooks.Verify(w, h, b, [][]byte{secret}, now) == nil && webhooks.Verify(w, h, b, [][]byte{previous}, now) == nil {
				t.Fatalf("one delivery verified under two secrets")
			}
		}
		sh := webhooks.Sign(w2.Signature, secret, b, now)
		if err := webhooks.Verify(w2, sh, b, [][]byte{secret}, now); err != nil {
			t.Fatalf("a signed body is refused: %v", err)
		}
	})
}
