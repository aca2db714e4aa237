package webhooks_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/server/webhooks"
	"github.com/connector-engine/connector/definitions"
)

// stripeDef is the webhooks section of examples/stripe.yaml.
func stripeDef(t testing.TB) *definitions.Webhooks {
	t.Helper()
	const path = "../../../examples/stripe.yaml"
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	set, err := definitions.Parse(definitions.Builtin(), definitions.File{Path: path, Data: data})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := set.Lookup("stripe")
	if d == nil || d.Webhooks == nil || d.Webhooks.Signature == nil {
		t.Fatal("examples/stripe.yaml declares no webhook signature")
	}
	return d.Webhooks
}

// stripeSign is Stripe's signature as its documentation describes it
// (https://docs.stripe.com/webhooks#verify-manually), written here from
// that description rather than with the package's Sign: the signed payload
// is the timestamp, a ".", and the raw body; v1 is its hex HMAC-SHA256
// keyed with the endpoint secret; a rotation sends one v1 per secret.
func stripeSign(t int64, body []byte, secrets ...[]byte) string {
	h := "t=" + strconv.FormatInt(t, 10)
	for _, s := range secrets {
		m := hmac.New(sha256.New, s)
		fmt.Fprintf(m, "%d.", t)
		m.Write(body)
		h += ",v1=" + hex.EncodeToString(m.Sum(nil))
	}
	return h
}

// TestStripeLoopback: a receiver on 127.0.0.1 applying examples/stripe.yaml
// accepts deliveries signed as Stripe signs them (one secret, or two during
// a rotation, with a test-mode v0 pair beside), reads the event's id and
// type, and refuses a wrong secret, a changed body, a timestamp outside
// five minutes either way, and headers that are absent or malformed, each
// for its reason.
func TestStripeLoopback(t *testing.T) {
	w := stripeDef(t)
	if w.Signature.Tolerance != 5*time.Minute {
		t.Fatalf("tolerance %s, want 5m", w.Signature.Tolerance)
	}
	now := time.Unix(1_780_000_000, 0)
	var mu sync.Mutex
	known := [][]byte{secret}
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(rw, err.Error(), 400)
			return
		}
		mu.Lock()
		keys := known
		mu.Unlock()
		if err := webhooks.Verify(w, r.Header, body, keys, now); err != nil {
			var ve *webhooks.VerifyError
			if !errors.As(err, &ve) {
				t.Errorf("Verify returned %T %v, want a *VerifyError", err, err)
			}
			rw.Header().Set("X-Reason", ve.Reason)
			http.Error(rw, err.Error(), 400)
			return
		}
		d, err := webhooks.Parse(w, r.Header, body)
		if err != nil {
			http.Error(rw, err.Error(), 400)
			return
		}
		_ = json.NewEncoder(rw).Encode(d)
	}))
	defer srv.Close()
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Fatalf("the receiver is not on loopback: %s", srv.URL)
	}
	send := func(header string, body []byte) (int, string, webhooks.Delivery) {
		t.Helper()
		req, _ := http.NewRequest("POST", srv.URL, strings.NewReader(string(body)))
		if header != "" {
			req.Header.Set("Stripe-Signature", header)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var d webhooks.Delivery
		if resp.StatusCode == 200 {
			_ = json.NewDecoder(resp.Body).Decode(&d)
		}
		return resp.StatusCode, resp.Header.Get("X-Reason"), d
	}
	body := []byte(`{"id":"evt_1NG8Du2eZvKYlo2CUI79vXWy","object":"event","type":"invoice.paid","created":1780000000,"data":{"object":{"id":"in_1","amount_paid":2000}}}`)
	ts := now.Unix()
	other := []byte("whsec_another_endpoint_secret")

	if code, reason, d := send(stripeSign(ts, body, secret), body); code != 200 || d.ID != "evt_1NG8Du2eZvKYlo2CUI79vXWy" || d.EventType != "invoice.paid" {
		t.Fatalf("a delivery signed as Stripe signs: %d %s %+v", code, reason, d)
	}
	if code, reason, _ := send(webhooks.Sign(w.Signature, secret, body, now).Get("Stripe-Signature"), body); code != 200 {
		t.Fatalf("Sign's header: %d %s", code, reason)
	}
	// A rotation: Stripe signs with the old and the new secret; the
	// receiver may know either. v0 pairs and unknown keys are skipped.
	rotating := stripeSign(ts, body, other, secret) + ",v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39,scheme=x"
	for _, k := range [][][]byte{{secret}, {other}, {other, secret}} {
		mu.Lock()
		known = k
		mu.Unlock()
		if code, reason, _ := send(rotating, body); code != 200 {
			t.Fatalf("a rotation's header with %d known secrets: %d %s", len(k), code, reason)
		}
	}
	mu.Lock()
	known = [][]byte{secret}
	mu.Unlock()
	for _, age := range []time.Duration{-4 * time.Minute, 4*time.Minute + 59*time.Second, 5 * time.Minute} {
		at := now.Add(-age).Unix()
		if code, reason, _ := send(stripeSign(at, body, secret), body); code != 200 {
			t.Fatalf("a delivery %s old: %d %s", age, code, reason)
		}
	}
	changed := []byte(strings.Replace(string(body), "2000", "200000", 1))
	for _, c := range []struct {
		what, header string
		body         []byte
		reason       string
	}{
		{"another secret", stripeSign(ts, body, other), body, webhooks.ReasonMismatch},
		{"a changed body", stripeSign(ts, body, secret), changed, webhooks.ReasonMismatch},
		{"another timestamp than signed", strings.Replace(stripeSign(ts, body, secret), "t="+strconv.FormatInt(ts, 10), "t="+strconv.FormatInt(ts-1, 10), 1), body, webhooks.ReasonMismatch},
		{"6 minutes old", stripeSign(now.Add(-6*time.Minute).Unix(), body, secret), body, webhooks.ReasonTooOld},
		{"6 minutes ahead", stripeSign(now.Add(6*time.Minute).Unix(), body, secret), body, webhooks.ReasonTooOld},
		{"a replay a day later", stripeSign(now.Add(-24*time.Hour).Unix(), body, secret), body, webhooks.ReasonTooOld},
		{"no header", "", body, webhooks.ReasonMissing},
		{"no timestamp", strings.TrimPrefix(stripeSign(ts, body, secret), "t="+strconv.FormatInt(ts, 10)+","), body, webhooks.ReasonTimestamp},
		{"a timestamp not in seconds", strings.Replace(stripeSign(ts, body, secret), "t=", "t=+", 1), body, webhooks.ReasonTimestamp},
		{"two timestamps", "t=1," + stripeSign(ts, body, secret), body, webhooks.ReasonMalformed},
		{"only v0", "t=" + strconv.FormatInt(ts, 10) + ",v0=00ff", body, webhooks.ReasonMalformed},
		{"v1 not hex", "t=" + strconv.FormatInt(ts, 10) + ",v1=zz", body, webhooks.ReasonMalformed},
		{"not pairs", "5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd", body, webhooks.ReasonMalformed},
		{"another scheme", "sha256=abc", body, webhooks.ReasonTimestamp},
	} {
		if code, reason, _ := send(c.header, c.body); code != 400 || reason != c.reason {
			t.Errorf("%s: %d %q, want 400 %q", c.what, code, reason, c.reason)
		}
	}
}

// TestParsePairs: values are taken as sent; other keys are skipped; what
// is not a pair, a second timestamp and too many signatures are errors.
func TestParsePairs(t *testing.T) {
	p, err := webhooks.ParsePairs(" t=12 , v1=ab,v0=cd,v1=ef=,x=", "t", "v1")
	if err != nil || p.Timestamp != "12" || strings.Join(p.Signatures, "|") != "ab|ef=" {
		t.Fatalf("ParsePairs = %+v, %v", p, err)
	}
	for _, bad := range []string{"t=1,v1", "=x", "t=1,t=2,v1=00", strings.Repeat("v1=00,", webhooks.MaxSignatures+1)} {
		if _, err := webhooks.ParsePairs(bad, "t", "v1"); err == nil {
			t.Errorf("ParsePairs(%q) accepted it", bad)
		}
	}
}

// FuzzVerify: whatever the Stripe-Signature header and body, Verify
// returns nil or a *VerifyError (never panics); it accepts only a header
// holding the v1 HMAC of its own t and the body under the secret, with t
// within the tolerance; every signature ParsePairs returns is a v1 pair of
// the header; and the header Stripe would send for the same body and a
// time within the tolerance is accepted.
func FuzzVerify(f *testing.F) {
	w := stripeDef(f)
	now := time.Unix(1_780_000_000, 0)
	body := []byte(`{"id":"evt_1","type":"charge.succeeded"}`)
	f.Add(stripeSign(now.Unix(), body, secret), body, int64(0))
	f.Add(stripeSign(now.Unix(), body, previous, secret)+",v0=00", body, int64(100))
	f.Add("t=1780000000,v1=", []byte("{}"), int64(-299))
	f.Add("t=,v1=zz,,,=,v1", []byte(""), int64(1<<40))
	f.Add("v1=00,t=9999999999999", []byte("x"), int64(-1))
	f.Fuzz(func(t *testing.T, header string, body []byte, age int64) {
		h := http.Header{}
		h.Set("Stripe-Signature", header)
		err := webhooks.Verify(w, h, body, [][]byte{secret}, now)
		var ve *webhooks.VerifyError
		if err != nil && !errors.As(err, &ve) {
			t.Fatalf("Verify returned %T %v", err, err)
		}
		p, perr := webhooks.ParsePairs(header, "t", "v1")
		for _, s := range p.Signatures {
			if !strings.Contains(header, "v1="+s) {
				t.Fatalf("ParsePairs returned %q, which is no v1 pair of %q", s, header)
			}
		}
		if err == nil {
			if perr != nil {
				t.Fatalf("Verify accepted %q, which ParsePairs refuses: %v", header, perr)
			}
			sec, serr := strconv.ParseInt(p.Timestamp, 10, 64)
			if serr != nil || now.Sub(time.Unix(sec, 0)).Abs() > w.Signature.Tolerance {
				t.Fatalf("Verify accepted %q, whose time is out of the window", header)
			}
			want := strings.TrimPrefix(stripeSign(sec, body, secret), "t="+p.Timestamp+",v1=")
			found := false
			for _, s := range p.Signatures {
				found = found || strings.EqualFold(s, want)
			}
			if !found {
				t.Fatalf("Verify accepted %q without the body's signature", header)
			}
		}
		// The header Stripe sends, for this body, at most 5 minutes off.
		at := now.Add(-time.Duration(age%300) * time.Second).Unix()
		h.Set("Stripe-Signature", stripeSign(at, body, previous, secret))
		if err := webhooks.Verify(w, h, body, [][]byte{secret}, now); err != nil {
			t.Fatalf("a genuine delivery %ds old was refused: %v", now.Unix()-at, err)
		}
	})
}
