package examples_test

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/connector-engine/connector/definitions"
)

// TestListingStyles pins how each example's listings page, as the
// provider's documentation describes it.
func TestListingStyles(t *testing.T) {
	set := load(t)
	tests := []struct {
		def, action string
		want        definitions.Pagination
	}{
		{"salesforce", "query", definitions.Pagination{Style: definitions.PageNextURL, Items: "records", NextPath: "nextRecordsUrl"}},
		{"zoho-crm", "list_records", definitions.Pagination{Style: definitions.PagePage, PageParam: "page", FirstPage: 1, SizeParam: "per_page", Size: 200, Items: "data", MorePath: "info.more_records"}},
		{"hubspot", "list_contacts", definitions.Pagination{Style: definitions.PageCursor, Items: "results", CursorPath: "paging.next.after", CursorParam: "after", SizeParam: "limit", Size: 100}},
		{"microsoft-graph", "list_users", definitions.Pagination{Style: definitions.PageNextURL, Items: "value", NextPath: "/@odata.nextLink", SizeParam: "$top", Size: 100}},
		{"twilio", "list_messages", definitions.Pagination{Style: definitions.PageNextURL, Items: "messages", NextPath: "next_page_uri", SizeParam: "PageSize", Size: 1000}},
		{"pipedrive", "list_deals", definitions.Pagination{Style: definitions.PageOffset, OffsetParam: "start", SizeParam: "limit", Size: 500, Items: "data", MorePath: "additional_data.pagination.more_items_in_collection"}},
		{"google-drive", "list_files", definitions.Pagination{Style: definitions.PageCursor, Items: "files", CursorPath: "nextPageToken", CursorParam: "pageToken", SizeParam: "pageSize", Size: 100}},
		{"stripe", "list_customers", definitions.Pagination{Style: definitions.PageLastItem, Items: "data", LastPath: "id", CursorParam: "starting_after", MorePath: "has_more", SizeParam: "limit", Size: 100}},
		{"dropbox", "list_folder", definitions.Pagination{Style: definitions.PageCursor, Items: "entries", CursorPath: "cursor", CursorBody: "cursor", ContinuePath: "/files/list_folder/continue", MorePath: "has_more"}},
		{"slack", "list_conversations", definitions.Pagination{Style: definitions.PageCursor, Items: "channels", CursorPath: "response_metadata.next_cursor", CursorParam: "cursor", SizeParam: "limit", Size: 200}},
	}
	for _, tt := range tests {
		t.Run(tt.def+"/"+tt.action, func(t *testing.T) {
			d, err := set.Lookup(tt.def)
			if err != nil {
				t.Fatal(err)
			}
			a, err := d.Action(tt.action)
			if err != nil {
				t.Fatal(err)
			}
			if a.Pagination == nil || *a.Pagination != tt.want {
				t.Errorf("pagination %+v, want %+v", a.Pagination, tt.want)
			}
		})
	}
}

// TestSendToken pins where each example's API requests carry the token.
func TestSendToken(t *testing.T) {
	set := load(t)
	tests := []struct {
		def  string
		want definitions.SendToken
	}{
		{"github", definitions.SendToken{In: "header", Name: "Authorization", TypePrefix: true}},
		{"zoho-crm", definitions.SendToken{In: "header", Name: "Authorization", Prefix: "Zoho-oauthtoken "}},
	}
	for _, tt := range tests {
		d, err := set.Lookup(tt.def)
		if err != nil {
			t.Fatal(err)
		}
		if got := d.Auth.OAuth.SendToken; got != tt.want {
			t.Errorf("%s: send_token %+v, want %+v", tt.def, got, tt.want)
		}
	}
}

// TestRateLimits pins the examples' rate limits without a reset header.
func TestRateLimits(t *testing.T) {
	set := load(t)
	d, err := set.Lookup("hubspot")
	if err != nil {
		t.Fatal(err)
	}
	if rl := d.RateLimit; rl.RemainingHeader != "X-HubSpot-RateLimit-Remaining" || rl.ResetHeader != "" || rl.Per != 10*time.Second || rl.Limit != 100 {
		t.Errorf("hubspot rate limit %+v", rl)
	}
}

// TestTenantHosts renders the per-tenant hosts of the examples whose
// tenants live on their own host, and refuses values that would move it.
func TestTenantHosts(t *testing.T) {
	set := load(t)
	tests := []struct {
		def, field, value, key, want string
	}{
		{"zendesk", "Subdomain", "acme", "base_url", "https://acme.zendesk.com/api/v2"},
		{"zendesk", "Subdomain", "acme", "token_request_uri", "https://acme.zendesk.com/oauth/tokens"},
		{"shopify", "Shop", "acme-store", "base_url", "https://acme-store.myshopify.com/admin/api/2024-10"},
		{"shopify", "Shop", "acme-store", "token_request_uri", "https://acme-store.myshopify.com/admin/oauth/access_token"},
		{"okta", "OktaDomain", "acme.okta.com", "base_url", "https://acme.okta.com/api/v1"},
		{"okta", "OktaDomain", "login.acme.example", "token_request_uri", "https://login.acme.example/oauth2/v1/token"},
		{"zendesk", "Subdomain", "Bücher", "base_url", "https://xn--bcher-kva.zendesk.com/api/v2"},
	}
	for _, tt := range tests {
		d, _ := set.Get(tt.def)
		vals, err := d.Values("", map[string]string{tt.field: tt.value})
		if err != nil {
			t.Fatalf("%s %s=%s: %v", tt.def, tt.field, tt.value, err)
		}
		got := vals[definitions.VarBaseURL]
		if tt.key != "base_url" {
			tmpl, _ := d.URI(tt.key)
			if got, err = tmpl.Expand(vals); err != nil {
				t.Fatal(err)
			}
		}
		if got != tt.want {
			t.Errorf("%s %s: got %s, want %s", tt.def, tt.key, got, tt.want)
		}
	}
	for _, bad := range []struct{ def, field, value string }{
		{"zendesk", "Subdomain", "evil.example/x?"},
		{"zendesk", "Subdomain", "acme.evil"},
		{"shopify", "Shop", "acme@evil"},
		{"okta", "OktaDomain", "https://acme.okta.com"},
		{"okta", "OktaDomain", "10.0.0.1"},
		{"okta", "OktaDomain", "acme.okta.com:444"},
	} {
		d, _ := set.Get(bad.def)
		if _, err := d.Values("", map[string]string{bad.field: bad.value}); err == nil {
			t.Errorf("%s accepted %s=%q", bad.def, bad.field, bad.value)
		}
	}
}

// TestClientsAndScopes: Xero is a public client; Graph's national clouds
// ask for their own scopes.
func TestClientsAndScopes(t *testing.T) {
	set := load(t)
	x, _ := set.Get("xero")
	if o := x.Auth.OAuth; !o.Public || !o.PKCE {
		t.Errorf("xero: public %v, pkce %v", o.Public, o.PKCE)
	}
	g, _ := set.Get("microsoft-graph")
	want := map[string]string{
		"global": "[https://graph.microsoft.com/User.Read offline_access]",
		"us-gov": "[https://graph.microsoft.us/User.Read offline_access]",
		"china":  "[https://microsoftgraph.chinacloudapi.cn/User.Read offline_access]",
	}
	for env, scopes := range want {
		e, err := g.Environment(env)
		if err != nil {
			t.Fatal(err)
		}
		got := e.Scopes
		if got == nil {
			got = g.Auth.OAuth.Scopes
		}
		if fmt.Sprint(got) != scopes {
			t.Errorf("graph %s: scopes %v, want %s", env, got, scopes)
		}
	}
	vals, err := g.Values("us-gov", nil)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, _ := g.URI("token_request_uri")
	if got, _ := tmpl.Expand(vals); got != "https://login.microsoftonline.us/organizations/oauth2/v2.0/token" {
		t.Errorf("graph us-gov token URI %s", got)
	}
}

var update = flag.Bool("update", false, "rewrite testdata/requests.golden from the current output")

// TestRenderEveryExample renders every OAuth request of every example
// (initiate, token, refresh, revoke, introspection) as render --request shows
// it, and where API requests carry the token, into testdata/requests.golden:
// each must build, carry the standard parameters and never show a secret.
// Review a changed golden file against the provider's documentation, which
// each example's comments link (go test -run TestRenderEveryExample -update).
func TestRenderEveryExample(t *testing.T) {
	set := load(t)
	samples := map[string]string{
		"InstanceUrl": "https://acme.my.salesforce.com", "Subdomain": "acme", "Shop": "acme", "OktaDomain": "acme.okta.com",
		"TenantId": "00000000-0000-0000-0000-000000000000", "ServerUrl": "https://github.acme.example",
		"ApiKey": "k", "ApplicationKey": "a", "PartnerApiKey": "pk", "SiteUrl": "https://acme.atlassian.net", "Email": "a@acme.example", "ApiToken": "tok",
		"BaseUriHost": "na3.docusign.net", "AccountId": "00000000-0000-0000-0000-000000000000", "CompanyDomain": "acme",
		"CloudId": "00000000-0000-0000-0000-000000000000", "RealmId": "9130350000000000",
		"ApplicationId": "amzn1.sp.solution.00000000-0000-0000-0000-000000000000", "ApiUrl": "https://api.acme.example",
		"ClientId": "cid", "ClientSecret": "SECRET-VALUE", "RedirectUri": "https://platform.example/cb",
		"code": "CODE-VALUE", "refreshToken": "REFRESH-VALUE", "PrivateKey": "PEM-VALUE", "PrivateKeyId": "kid-1",
		"ClientCertificate": "CERT-PEM", "ClientKey": "KEY-PEM",
		// Session logins and OAuth 1.0a.
		"Pod": "10ax", "Site": "acme", "TokenName": "engine", "TokenSecret": "SECRET-VALUE", "Username": "ada", "Password": "SECRET-VALUE",
		"OAuthSecret": "SECRET-VALUE",
	}
	rendered := 0
	var golden strings.Builder
	for _, d := range set.All() {
		if d.Source == "" || strings.HasPrefix(d.Source, "builtin/") {
			continue
		}
		if st, ok := sendToken(d); ok {
			fmt.Fprintf(&golden, "## %s: API requests carry the token in %s %s", d.Name, st.In, st.Name)
			if st.Prefix != "" || st.TypePrefix {
				fmt.Fprintf(&golden, " (prefix %q, token type %v)", st.Prefix, st.TypePrefix)
			}
			golden.WriteString("\n\n")
		}
		keys := definitions.URIKeys
		if d.Auth.OAuth == nil {
			if d.Auth.Session == nil && (d.Auth.OAuth1 == nil || !d.Auth.OAuth1.ThreeLegged()) {
				continue
			}
			keys = append([]string{"authorize_uri"}, definitions.AuthURIKeys...) // the login; OAuth 1.0a's three requests
		}
		assign := map[string]string{}
		for k, v := range samples {
			if _, ok := d.Vars().Lookup(k); ok {
				assign[k] = v
			}
		}
		for _, env := range d.Environments {
			vals, err := d.Values(env.Name, assign)
			if err != nil {
				t.Fatalf("%s/%s: %v", d.Name, env.Name, err)
			}
			for _, key := range keys {
				_, ok := d.URI(key)
				if !ok && key == "refresh_uri" && d.Auth.OAuth.Version == definitions.V2 && (d.GrantType() == definitions.GrantAuthorizationCode || d.GrantType() == definitions.GrantDeviceCode) {
					ok = true // refreshed at the token endpoint
				}
				if !ok {
					continue
				}
				p, err := d.Preview(env.Name, key, vals, false)
				if err != nil {
					t.Fatalf("%s/%s %s: %v", d.Name, env.Name, key, err)
				}
				s := p.String()
				fmt.Fprintf(&golden, "## %s %s %s\n%s\n", d.Name, env.Name, key, s)
				for _, secret := range []string{"SECRET-VALUE", "CODE-VALUE", "REFRESH-VALUE"} {
					if strings.Contains(s, secret) {
						t.Errorf("%s %s shows a secret:\n%s", d.Name, key, s)
					}
				}
				if d.Auth.OAuth == nil {
					rendered++
					continue
				}
				idName, _ := d.Auth.OAuth.Param("client_id") // TikTok's client_key
				if (key == "initiate_uri" || key == "authorize_uri") && !strings.Contains(p.URL, idName+"=cid") {
					t.Errorf("%s %s lacks the client id: %s", d.Name, key, p.URL)
				}
				rendered++
			}
		}
	}
	if rendered < 30 {
		t.Fatalf("only %d requests rendered", rendered)
	}
	const path = "testdata/requests.golden"
	if *update {
		if err := os.WriteFile(path, []byte(golden.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run TestRenderEveryExample -update to create it)", err)
	}
	if got := golden.String(); got != string(want) {
		t.Errorf("the rendered requests differ from %s; run go test -run TestRenderEveryExample -update and review the diff:\n%s", path, firstDiff(got, string(want)))
	}
}

// sendToken is where an example's API requests carry an OAuth or session
// token.
func sendToken(d *definitions.Definition) (definitions.SendToken, bool) {
	switch {
	case d.Auth.OAuth != nil:
		return d.Auth.OAuth.SendToken, true
	case d.Auth.Session != nil:
		return d.Auth.Session.SendToken, true
	}
	return definitions.SendToken{}, false
}

// firstDiff shows the first line where got and want differ.
func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("line %d\n--- got\n%s\n--- want\n%s", i+1, gl, wl)
		}
	}
	return ""
}
