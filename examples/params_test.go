package examples_test

import (
	"net/url"
	"strings"
	"testing"
)

// TestNonstandardTokenRequests renders the requests of the examples whose
// providers depart from RFC 6749 and compares them with what their
// documentation shows.
func TestNonstandardTokenRequests(t *testing.T) {
	set := load(t)

	// TikTok: client_key, everywhere the client id would go.
	tt := mustDef(t, set, "tiktok")
	vals, err := tt.Values("", map[string]string{"ClientId": "cid", "ClientSecret": "SECRET-VALUE", "RedirectUri": "https://platform.example/cb", "code": "CODE-VALUE"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := tt.Preview("", "initiate_uri", vals, false)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(p.URL)
	if q := u.Query(); q.Get("client_key") != "cid" || q.Has("client_id") || q.Get("scope") != "user.info.basic,video.list" || q.Get("response_type") != "code" {
		t.Errorf("tiktok authorization URL %s; want client_key, comma-separated scopes, no client_id", p.URL)
	}
	p, err = tt.Preview("", "token_request_uri", vals, false)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := url.ParseQuery(p.Body)
	if p.Method != "POST" || body.Get("client_key") != "cid" || body.Has("client_id") || body.Get("client_secret") != "***" || body.Get("grant_type") != "authorization_code" || body.Get("code") != "***" {
		t.Errorf("tiktok token request %s %s", p.Method, p.Body)
	}

	// Amazon SP-API: the code arrives as spapi_oauth_code, the seller as selling_partner_id.
	amz := mustDef(t, set, "amazon-sp-api")
	if o := amz.Auth.OAuth; o.CallbackCode != "spapi_oauth_code" || o.SendToken.Name != "x-amz-access-token" || o.SendToken.TypePrefix {
		t.Errorf("amazon-sp-api: callback code %q, send_token %+v", o.CallbackCode, o.SendToken)
	}
	if f, _ := amz.Field("SellingPartnerId"); f == nil || f.Learn == nil || f.Learn.Param != "selling_partner_id" {
		t.Error("amazon-sp-api does not learn selling_partner_id from the callback")
	}
	av, err := amz.Values("", map[string]string{"ClientId": "cid", "ApplicationId": "amzn1.sp.solution.00000000-0000-0000-0000-000000000000"})
	if err != nil {
		t.Fatal(err)
	}
	if p, err = amz.Preview("", "initiate_uri", av, false); err != nil || !strings.HasPrefix(p.URL, "https://sellercentral.amazon.com/apps/authorize/consent?application_id=amzn1.sp.solution.") {
		t.Errorf("amazon-sp-api consent URL %v, %v", p, err)
	}

	// Lark: client credentials in a JSON body as app_id and app_secret,
	// without grant_type; the token at tenant_access_token, its lifetime at expire.
	lark := mustDef(t, set, "lark")
	lv, err := lark.Values("feishu", map[string]string{"ClientId": "cli_a1", "ClientSecret": "SECRET-VALUE"})
	if err != nil {
		t.Fatal(err)
	}
	if p, err = lark.Preview("feishu", "token_request_uri", lv, false); err != nil || p.URL != "https://open.feishu.cn/open-apis/auth/v3/tenant_access_token/internal" || p.Body != `{"app_id":"cli_a1","app_secret":"***"}` {
		t.Errorf("lark token request %v, %v", p, err)
	}
	if tr := lark.Auth.OAuth.TokenResponse; tr.AccessToken != "tenant_access_token" || tr.ExpiresIn != "expire" {
		t.Errorf("lark token response %+v", tr)
	}

	// Fitbit: HTTP Basic and client_id in the body, never the secret there.
	// Keap: the secret in the body for the code, HTTP Basic alone for the refresh.
	for _, tt := range []struct {
		def, key   string
		basic      bool
		body, lack []string
	}{
		{"fitbit", "token_request_uri", true, []string{"client_id=cid", "code=***", "code_verifier=***"}, []string{"client_secret"}},
		{"fitbit", "refresh_uri", true, []string{"client_id=cid", "grant_type=refresh_token"}, []string{"client_secret"}},
		{"keap", "token_request_uri", false, []string{"client_id=cid", "client_secret=***", "code=***"}, nil},
		{"keap", "refresh_uri", true, []string{"grant_type=refresh_token", "refresh_token=***"}, []string{"client_id", "client_secret"}},
	} {
		d := mustDef(t, set, tt.def)
		v, err := d.Values("", map[string]string{"ClientId": "cid", "ClientSecret": "SECRET-VALUE", "RedirectUri": "https://platform.example/cb", "code": "CODE-VALUE", "refreshToken": "REFRESH-VALUE"})
		if err != nil {
			t.Fatal(err)
		}
		p, err := d.Preview("", tt.key, v, false)
		if err != nil {
			t.Fatal(err)
		}
		s := p.String()
		if strings.Contains(s, "Authorization: Basic") != tt.basic {
			t.Errorf("%s %s: Basic %v, want %v:\n%s", tt.def, tt.key, !tt.basic, tt.basic, s)
		}
		for _, kv := range tt.body {
			if !strings.Contains("&"+p.Body+"&", "&"+kv+"&") {
				t.Errorf("%s %s: body %s lacks %s", tt.def, tt.key, p.Body, kv)
			}
		}
		for _, k := range tt.lack {
			if strings.Contains(p.Body, k+"=") {
				t.Errorf("%s %s: body %s has %s", tt.def, tt.key, p.Body, k)
			}
		}
	}

	// Gusto: JSON bodies (no secret in a URL), and the refresh repeats the
	// redirect_uri; the company learned from /v1/token_info.
	gusto := mustDef(t, set, "gusto")
	gv, err := gusto.Values("demo", map[string]string{"ClientId": "cid", "ClientSecret": "SECRET-VALUE", "RedirectUri": "https://platform.example/cb", "refreshToken": "REFRESH-VALUE"})
	if err != nil {
		t.Fatal(err)
	}
	if p, err = gusto.Preview("demo", "refresh_uri", gv, false); err != nil || p.URL != "https://api.gusto-demo.com/oauth/token" ||
		p.Body != `{"client_id":"cid","client_secret":"***","grant_type":"refresh_token","redirect_uri":"https://platform.example/cb","refresh_token":"***"}` {
		t.Errorf("gusto refresh request %v, %v", p, err)
	}
	if f, _ := gusto.Field("CompanyUuid"); f == nil || f.Learn == nil || f.Learn.From != "request" || len(f.Learn.Paths) != 1 || f.Learn.Paths[0] != "resource.uuid" {
		t.Error("gusto does not learn the company uuid from /v1/token_info")
	}

	// Zabbix 6.0: the session id in the JSON-RPC body's auth member.
	if st := mustDef(t, set, "zabbix").Auth.Session.SendToken; st.In != "body" || st.Name != "auth" {
		t.Errorf("zabbix send_token %+v", st)
	}

	// Strava: the absolute expiry when expires_in is missing.
	if tr := mustDef(t, set, "strava").Auth.OAuth.TokenResponse; tr.ExpiresAt != "expires_at" || tr.ExpiresIn != "expires_in" {
		t.Errorf("strava token response %+v", tr)
	}
}
