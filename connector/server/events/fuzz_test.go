package events

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Where a FuzzVerify mutation changes one byte of a signed message.
const (
	inBody = iota
	inID
	inTimestamp
	inSignature
	places
)

// FuzzVerify: for any key, id, time and body, a message signed with the
// secret verifies (within the tolerance), and changing any single byte of
// it (body, webhook-id, webhook-timestamp or webhook-signature) makes it
// fail; and headers made up by the fuzzer never verify.
func FuzzVerify(f *testing.F) {
	vector := []byte(`{"test": 2432232314}`)
	vkey, _ := base64.StdEncoding.DecodeString("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	for place := range places {
		// The specification's vector, each place, the first and the last
		// byte (the last base64 character of a signature carries padding
		// bits a lax decoder ignores).
		f.Add(vkey, "msg_p5jXN8AQM9LWM0D4loKWxJek", int64(1614265330), vector, uint8(place), uint16(0), byte(1), "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
		f.Add(vkey, "msg_p5jXN8AQM9LWM0D4loKWxJek", int64(1614265330), vector, uint8(place), uint16(0xffff), byte(2), "")
	}
	f.Add([]byte{}, "evt_1", int64(0), []byte{}, uint8(inBody), uint16(0), byte(0x80), "v1, v2,abc v1,,")
	f.Add(make([]byte, 64), "id with spaces", int64(-1), []byte("\x00\xff body"), uint8(inTimestamp), uint16(0), byte('+'^'1'), strings.Repeat("v1,AAAA ", 100))
	f.Add([]byte("key"), "é", int64(1<<40), []byte(`{"ü": "\u2028"}`), uint8(inSignature), uint16(2), byte(' '^'1'), "v1,")
	f.Add([]byte("k"), "evt", int64(1700000000), []byte(strings.Repeat("x", 4096)), uint8(inSignature), uint16(45), byte(0x04), "\n")
	f.Fuzz(func(t *testing.T, key []byte, id string, unix int64, body []byte, place uint8, pos uint16, flip byte, forged string) {
		// A Standard Webhooks key is 24 to 64 bytes.
		key = append(key, make([]byte, max(0, 24-len(key)))...)[:min(max(len(key), 24), 64)]
		secret := SecretPrefix + base64.StdEncoding.EncodeToString(key)
		if unix < -1<<40 || unix > 1<<40 {
			unix %= 1 << 40
		}
		now := time.Unix(unix, 0)
		if id == "" {
			id = "evt"
		}

		h := http.Header{}
		h.Set(HeaderID, id)
		h.Set(HeaderTimestamp, strconv.FormatInt(unix, 10))
		h.Set(HeaderSignature, forged)
		real, err := Sign(secret, id, now, body)
		if err != nil {
			t.Fatal(err)
		}
		// Only the real signature verifies (the vector seed sends it).
		if err := Verify(secret, h, body, now, DefaultTolerance); (err == nil) != strings.Contains(" "+forged+" ", " "+real+" ") {
			t.Fatalf("a given signature %q: Verify = %v", forged, err)
		}

		if err := SetHeaders(h, []string{secret}, id, now, body); err != nil {
			t.Fatal(err)
		}
		if err := Verify(secret, h, body, now, DefaultTolerance); err != nil {
			t.Fatalf("refused a signed message: %v", err)
		}
		if err := Verify(secret, h, body, now.Add(DefaultTolerance), DefaultTolerance); err != nil {
			t.Fatalf("refused a signed message at the edge of the tolerance: %v", err)
		}

		if flip == 0 {
			flip = 1 // a change, not the same byte
		}
		change := func(s []byte) []byte {
			s = append([]byte(nil), s...)
			if len(s) == 0 {
				return []byte{flip}
			}
			s[int(pos)%len(s)] ^= flip
			return s
		}
		b, mh := body, h.Clone()
		switch place % places {
		case inBody:
			b = change(body)
		case inID:
			mh.Set(HeaderID, string(change([]byte(id))))
		case inTimestamp:
			mh.Set(HeaderTimestamp, string(change([]byte(h.Get(HeaderTimestamp)))))
		case inSignature:
			mh.Set(HeaderSignature, string(change([]byte(h.Get(HeaderSignature)))))
		}
		if err := Verify(secret, mh, b, now, DefaultTolerance); err == nil {
			t.Fatalf("a one-byte change (place %d, byte %d xor %#x) still verifies: headers %q, body of %d bytes", place%places, pos, flip, mh, len(b))
		}
	})
}
