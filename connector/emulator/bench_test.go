package emulator_test

import (
	"net/http"
	"testing"

	"github.com/connector-engine/connector/connector/emulator"
)

func noRateLimit(c *emulator.Config) { c.RateLimit = 1 << 30 }

// BenchmarkListProjects measures a full page of 100 projects over loopback HTTP.
func BenchmarkListProjects(b *testing.B) {
	e := newEnv(b, noRateLimit)
	tb := e.login()
	path := e.base + "/rest/v1.0/projects?company_id=" + demoCompany
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodGet, path, nil)
			req.Header.Set("Authorization", "Bearer "+tb.AccessToken)
			req.Header.Set("Procore-Company-Id", demoCompany)
			resp, err := e.hc.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			readAll(resp)
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	})
}

// BenchmarkRefresh measures one refresh-token rotation over loopback HTTP.
func BenchmarkRefresh(b *testing.B) {
	e := newEnv(b, noRateLimit)
	tb := e.login()
	b.ReportAllocs()
	for b.Loop() {
		tb = e.refresh(tb.RefreshToken)
	}
}
