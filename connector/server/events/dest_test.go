package events

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestCheckURL(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		url          string
		allowPrivate bool
		ok           bool
	}{
		{"https://93.184.215.14/hooks", false, true},
		{"https://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/hooks", false, true},
		{"http://93.184.215.14/hooks", false, false},
		{"http://93.184.215.14/hooks", true, false}, // http only on loopback
		{"http://127.0.0.1:8080/hooks", true, true},
		{"http://localhost:8080/hooks", true, true},
		{"http://[::1]:8080/hooks", true, true},
		{"http://127.0.0.1:8080/hooks", false, false},
		{"https://127.0.0.1/hooks", false, false},
		{"https://localhost/hooks", false, false},
		{"https://10.1.2.3/hooks", false, false},
		{"https://10.1.2.3/hooks", true, true},
		{"https://172.16.0.1/", false, false},
		{"https://192.168.1.1/", false, false},
		{"https://169.254.169.254/latest/meta-data", false, false},
		{"https://[fe80::1]/", false, false},
		{"https://[fd00::1]/", false, false},
		{"https://[::ffff:127.0.0.1]/", false, false},
		{"https://0.0.0.0/", false, false},
		{"https://100.64.0.1/", false, false},
		{"ftp://93.184.215.14/", false, false},
		{"/relative", false, false},
		{"https://user:pass@93.184.215.14/", false, false},
		{"https://93.184.215.14/#frag", false, false},
		{"https://", false, false},
	}
	for _, tc := range cases {
		err := CheckURL(ctx, tc.url, tc.allowPrivate)
		if (err == nil) != tc.ok {
			t.Errorf("CheckURL(%q, allowPrivate=%v) = %v, want ok=%v", tc.url, tc.allowPrivate, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrDestination) {
			t.Errorf("CheckURL(%q): %v is not ErrDestination", tc.url, err)
		}
	}
}

// TestTransportRefusesAtDial: the dialer checks the address it connects
// to, after DNS, so a name that passed CheckURL and then resolves to a
// private address is refused. A loopback server stands for it (localhost
// resolves to loopback, as a rebound name would).
func TestTransportRefusesAtDial(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	for _, allow := range []bool{false, true} {
		c := &http.Client{Transport: Transport(allow)}
		resp, err := c.Get(srv.URL)
		if allow {
			if err != nil {
				t.Fatalf("allowPrivate: %v", err)
			}
			resp.Body.Close()
			continue
		}
		if err == nil {
			resp.Body.Close()
			t.Fatal("the transport connected to a loopback address")
		}
		if !errors.Is(err, ErrDestination) {
			t.Fatalf("refused with %v, want ErrDestination", err)
		}
	}
}
