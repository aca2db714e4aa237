package connector

import (
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode"
)

// FuzzDeviceAuthorization feeds arbitrary device authorization answers
// (RFC 8628 3.2, JSON or form) to the parser: it never panics, and what it
// accepts is safe to show and open: a printable user code of bounded
// length, http(s) verification URLs, an interval from 1 s to the cap, and
// codes that expire after the request.
func FuzzDeviceAuthorization(f *testing.F) {
	f.Add("application/json", `{"device_code":"d","user_code":"WDJB-MJHT","verification_uri":"https://example.com/device","verification_uri_complete":"https://example.com/device?user_code=WDJB-MJHT","expires_in":1800,"interval":5}`)
	f.Add("application/json", `{"device_code":"d","user_code":"X","verification_uri":"javascript:alert(1)","expires_in":1}`)
	f.Add("application/json", `{"device_code":"d","user_code":"a\u001b[2J","verification_uri":"https://e/","expires_in":"600","interval":1e9}`)
	f.Add("application/x-www-form-urlencoded", "device_code=d&user_code=ABCD&verification_uri=https%3A%2F%2Fe%2Fd&expires_in=900&interval=0")
	start := time.Date(2026, 12, 3, 7, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, contentType, body string) {
		fields, err := decodeBody(contentType, []byte(body))
		if err != nil {
			return
		}
		da, err := parseDeviceAuthorization(fields, start)
		if err != nil {
			return
		}
		if da.deviceCode == "" || da.UserCode == "" || len(da.UserCode) > maxUserCode || strings.IndexFunc(da.UserCode, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
			t.Fatalf("accepted user code %q", da.UserCode)
		}
		for _, s := range []string{da.VerificationURI, da.VerificationURIComplete} {
			if s == "" && s == da.VerificationURIComplete { // optional (RFC 8628 3.2)
				continue
			}
			u, err := url.Parse(s)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				t.Fatalf("accepted verification URL %q", s)
			}
		}
		if da.Interval < time.Second || da.Interval > maxDeviceInterval || !da.Expires.After(start) {
			t.Fatalf("accepted interval %v, expiry %v", da.Interval, da.Expires)
		}
		shown := da.UserCode + " " + da.VerificationURI + " " + da.Expires.Format(time.RFC3339) // what String may show
		if len(da.deviceCode) >= 8 && strings.Contains(da.String(), da.deviceCode) && !strings.Contains(shown, da.deviceCode) {
			t.Fatalf("String shows the device code: %s", da)
		}
	})
}
