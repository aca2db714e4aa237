package connector

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/connector/token"
	"github.com/connector-engine/connector/definitions"
)

const benchDef = `name: bench
title: Bench
base_url: https://api.invalid
auth:
  scheme: oauth
  oauth:
    version: V2
    initiate_uri: ${BaseUrl}/authorize?client_id=${ClientId}&state=${State}
    token_request_uri: ${BaseUrl}/token
`

// BenchmarkGET compares one GET on a loopback server through a bare
// http.Client (the baseline), through x/oauth2's Transport, and through a
// connection's client with a fresh cached token. All three use transports
// with the same settings, each with its own connection pool.
func BenchmarkGET(b *testing.B) {
	body := []byte(`{"id":1,"name":"Bench project","active":true}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" && r.URL.Path == "/auth" {
			w.WriteHeader(401)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	defer srv.Close()

	c := &Connection{Definition: parseDef(b, benchDef, "bench"), ClientID: "id", ClientSecret: "secret", RedirectURI: "http://127.0.0.1:1/cb", BaseURL: srv.URL}
	api, err := NewAPI(c, store.NewMemory(), &APIOptions{Base: newBaseTransport(time.Minute)})
	if err != nil {
		b.Fatal(err)
	}
	if err := api.Source().Store(context.Background(), &token.Token{AccessToken: "bench-token", Expiry: time.Now().Add(24 * time.Hour)}); err != nil {
		b.Fatal(err)
	}
	bare := &http.Client{Transport: newBaseTransport(time.Minute)}
	clients := []struct {
		name   string
		client *http.Client
	}{
		{"bare", bare},
		// The same client with the token set by hand on each request: the
		// server then parses the same headers as for the two below.
		{"bare+token", bare},
		{"x-oauth2", &http.Client{Transport: &oauth2.Transport{
			Source: oauth2.ReuseTokenSource(nil, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "bench-token", Expiry: time.Now().Add(24 * time.Hour)})),
			Base:   newBaseTransport(time.Minute),
		}}},
		{"connector", api.Client()},
	}
	get := func(b *testing.B, client *http.Client, url string, byHand bool) {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			b.Fatal(err)
		}
		if byHand {
			req.Header.Set("Authorization", "Bearer bench-token")
		}
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	for _, mode := range []string{"serial", "parallel"} {
		for _, cl := range clients {
			byHand := cl.name == "bare+token"
			url := srv.URL + "/auth" // answers 401 without credentials
			if cl.name == "bare" {
				url = srv.URL + "/open"
			}
			b.Run(mode+"/"+cl.name, func(b *testing.B) {
				get(b, cl.client, url, byHand) // warm the connection pool
				b.ReportAllocs()
				b.ResetTimer()
				if mode == "serial" {
					for b.Loop() {
						get(b, cl.client, url, byHand)
					}
					return
				}
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						get(b, cl.client, url, byHand)
					}
				})
			})
		}
	}
}

// BenchmarkItems pages through n items, 100 a page, and reports the peak
// heap in use: it stays flat as n grows, because one page at a time is held.
func BenchmarkItems(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			s := newAPIServer(b)
			api, _ := newTestAPI(b, s, transportDef)
			s.handle(listing(n))
			p := &definitions.Pagination{Style: definitions.PagePage, PageParam: "page", SizeParam: "per_page", Size: 100, FirstPage: 1, TotalHeader: "Total"}
			var peak uint64
			var ms runtime.MemStats
			b.ReportAllocs()
			for b.Loop() {
				runtime.GC()
				count := 0
				for _, err := range api.Items(context.Background(), Request{Path: "/page"}, p, func(Progress) {
					runtime.ReadMemStats(&ms)
					peak = max(peak, ms.HeapInuse)
				}) {
					if err != nil {
						b.Fatal(err)
					}
					count++
				}
				if count != n {
					b.Fatal(fmt.Sprintf("%d items, want %d", count, n))
				}
			}
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
			b.ReportMetric(float64(n), "items/op")
		})
	}
}

// cannedTransport answers every request at once with the same response, so
// that the layers above it are all that is measured.
type cannedTransport struct{}

func (cannedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
}

// BenchmarkChain isolates what each client adds to a request, without the
// network: the same canned base transport bare, under x/oauth2's Transport,
// and under the connection's chain (scope, retry, bearer) with a fresh
// cached token. Subtract "bare" to get the per-request overhead; compare it
// with BenchmarkGET's loopback round trip.
func BenchmarkChain(b *testing.B) {
	c := &Connection{Definition: parseDef(b, benchDef, "bench"), ClientID: "id", ClientSecret: "secret", RedirectURI: "http://127.0.0.1:1/cb", BaseURL: "http://127.0.0.1:1"}
	api, err := NewAPI(c, store.NewMemory(), &APIOptions{Base: cannedTransport{}})
	if err != nil {
		b.Fatal(err)
	}
	if err := api.Source().Store(context.Background(), &token.Token{AccessToken: "bench-token", Expiry: time.Now().Add(24 * time.Hour)}); err != nil {
		b.Fatal(err)
	}
	clients := []struct {
		name   string
		client *http.Client
	}{
		{"bare", &http.Client{Transport: cannedTransport{}}},
		{"x-oauth2", &http.Client{Transport: &oauth2.Transport{
			Source: oauth2.ReuseTokenSource(nil, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "bench-token", Expiry: time.Now().Add(24 * time.Hour)})),
			Base:   cannedTransport{},
		}}},
		{"connector", api.Client()},
	}
	for _, cl := range clients {
		b.Run(cl.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:1/rest/v1.0/projects/1", nil)
				resp, err := cl.client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
			}
		})
	}
}
