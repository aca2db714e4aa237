package pemkey

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
)

func pemOf(t *testing.T, typ string, der []byte) string {
	t.Helper()
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

func TestParse(t *testing.T) {
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsa8, _ := x509.MarshalPKCS8PrivateKey(rk)
	ec8, _ := x509.MarshalPKCS8PrivateKey(ek)
	sec1, _ := x509.MarshalECPrivateKey(ek)
	garbage := "SECRET-KEY-MATERIAL"
	cases := []struct {
		name, pem string
		accept    Kinds
		wantErr   string // "" for success
		wrongKind bool
	}{
		{"pkcs1", pemOf(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rk)), RSA, "", false},
		{"pkcs8 rsa", pemOf(t, "PRIVATE KEY", rsa8), RSA, "", false},
		{"sec1", pemOf(t, "EC PRIVATE KEY", sec1), RSA | EC, "", false},
		{"pkcs8 ec", pemOf(t, "PRIVATE KEY", ec8), RSA | EC, "", false},
		{"pkcs8 ec for rsa only", pemOf(t, "PRIVATE KEY", ec8), RSA, "the private key is a *ecdsa.PrivateKey", true},
		{"sec1 for rsa only", pemOf(t, "EC PRIVATE KEY", sec1), RSA, `the PEM block is a "EC PRIVATE KEY", not a private key`, false},
		{"not pem, rsa", garbage, RSA, "the private key is not PEM (it should start with -----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----)", false},
		{"not pem, rsa or ec", garbage, RSA | EC, "the private key is not PEM (it should start with -----BEGIN PRIVATE KEY-----, -----BEGIN RSA PRIVATE KEY----- or -----BEGIN EC PRIVATE KEY-----)", false},
		{"bad pkcs1", pemOf(t, "RSA PRIVATE KEY", []byte(garbage)), RSA, "the RSA PRIVATE KEY block is not a valid PKCS #1 key", false},
		{"bad sec1", pemOf(t, "EC PRIVATE KEY", []byte(garbage)), EC, "the EC PRIVATE KEY block is not a valid SEC 1 key", false},
		{"bad pkcs8", pemOf(t, "PRIVATE KEY", []byte(garbage)), RSA, "the PRIVATE KEY block is not a valid PKCS #8 key", false},
		{"certificate", pemOf(t, "CERTIFICATE", []byte(garbage)), RSA, `the PEM block is a "CERTIFICATE", not a private key`, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			k, err := Parse(c.pem, c.accept)
			if c.wantErr == "" {
				if err != nil || k == nil {
					t.Fatalf("Parse: %v", err)
				}
				return
			}
			if err == nil || err.Error() != c.wantErr {
				t.Fatalf("err = %v, want %q", err, c.wantErr)
			}
			var wk *WrongKindError
			if errors.As(err, &wk) != c.wrongKind {
				t.Fatalf("WrongKindError = %v, want %v", !c.wrongKind, c.wrongKind)
			}
			if strings.Contains(err.Error(), garbage) {
				t.Fatalf("the error quotes the key: %v", err)
			}
		})
	}
}
