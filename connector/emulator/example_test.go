package emulator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/connector-engine/connector/connector/emulator"
)

// A service-account client gets a token without a browser and lists the
// companies it was installed in.
func ExampleServer_Start() {
	srv := emulator.New(emulator.Config{Clients: []emulator.Client{
		{ID: "my-dmsa", Secret: "my-dmsa-secret", ServiceAccount: true},
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	base, err := srv.Start(ctx, "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()

	hc := &http.Client{Timeout: 10 * time.Second}
	resp, err := hc.PostForm(base+"/oauth/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {"my-dmsa"}, "client_secret": {"my-dmsa-secret"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	fmt.Println("expires_in:", tok.ExpiresIn)

	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/rest/v1.0/companies", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	req.Header.Set("Procore-Company-Id", fmt.Sprint(emulator.DemoCompanyID))
	resp, err = hc.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	var companies []struct {
		ID   int64  `json:"id"`
		Name string `json:"name"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&companies)
	fmt.Println(resp.Status, companies)
	// Output:
	// expires_in: 5400
	// 200 OK [{562949953421312 Builder Bros Construction}]
}
