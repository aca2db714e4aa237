package events

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestSignStandardWebhooksVector: the test vector published with the
// Standard Webhooks specification (standard-webhooks/standard-webhooks,
// libraries/go/webhook_test.go TestWebhookSign; the same values appear in
// the specification's examples), so any Standard Webhooks library verifies
// these signatures.
func TestSignStandardWebhooksVector(t *testing.T) {
	const (
		secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		id     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
		body   = `{"test": 2432232314}`
		want   = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	)
	ts := time.Unix(1614265330, 0)
	got, err := Sign(secret, id, ts, []byte(body))
	if err != nil || got != want {
		t.Fatalf("Sign = %q, %v; want %q", got, err, want)
	}
	h := http.Header{}
	if err := SetHeaders(h, []string{secret}, id, ts, []byte(body)); err != nil {
		t.Fatal(err)
	}
	if h.Get("webhook-id") != id || h.Get("webhook-timestamp") != "1614265330" || h.Get("webhook-signature") != want {
		t.Fatalf("headers %v", h)
	}
	if err := Verify(secret, h, []byte(body), ts.Add(time.Minute), DefaultTolerance); err != nil {
		t.Fatalf("Verify of the vector: %v", err)
	}
}

func TestVerify(t *testing.T) {
	secret, other := NewSecret(), NewSecret()
	if !strings.HasPrefix(secret, "whsec_") || len(secret) != len("whsec_")+44 || secret == other {
		t.Fatalf("NewSecret = %q", secret)
	}
	now := time.Now()
	body := []byte(`{"id":"evt_1","type":"connection.connected"}`)
	signed := func(secrets ...string) http.Header {
		h := http.Header{}
		if err := SetHeaders(h, secrets, "evt_1", now, body); err != nil {
			t.Fatal(err)
		}
		return h
	}
	cases := []struct {
		name   string
		secret string
		h      http.Header
		body   []byte
		now    time.Time
		want   error
	}{
		{"valid", secret, signed(secret), body, now, nil},
		{"rotation: either secret verifies", other, signed(secret, other), body, now, nil},
		{"wrong secret", other, signed(secret), body, now, ErrBadSignature},
		{"altered body", secret, signed(secret), append([]byte(nil), append(body, ' ')...), now, ErrBadSignature},
		{"too old", secret, signed(secret), body, now.Add(6 * time.Minute), ErrTimestamp},
		{"from the future", secret, signed(secret), body, now.Add(-6 * time.Minute), ErrTimestamp},
		{"no signature", secret, func() http.Header { h := signed(secret); h.Del("webhook-signature"); return h }(), body, now, ErrNoSignature},
		{"altered id", secret, func() http.Header { h := signed(secret); h.Set("webhook-id", "evt_2"); return h }(), body, now, ErrBadSignature},
		{"v2 only", secret, func() http.Header {
			h := signed(secret)
			h.Set("webhook-signature", strings.Replace(h.Get("webhook-signature"), "v1,", "v2,", 1))
			return h
		}(), body, now, ErrBadSignature},
	}
	for _, tc := range cases {
		if err := Verify(tc.secret, tc.h, tc.body, tc.now, DefaultTolerance); !errors.Is(err, tc.want) && !(tc.want == nil && err == nil) {
			t.Errorf("%s: Verify = %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := Sign("whsec_not base64!", "x", now, body); err == nil {
		t.Error("a malformed secret signed")
	}
}
