package connector

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/connector-engine/connector/definitions"
)

const (
	psCallback = "http://127.0.0.1:8765/callback"
	// psBase is a valid procore connection string the rows build on.
	psBase = "Definition=procore;OAuthClientId=cid;OAuthClientSecret=csecret;CallbackURL=" + psCallback
)

// psSeedExample is the example from CData's Procore help, verbatim.
const psSeedExample = `Profile=C:\profiles\Procore.apip;Authscheme=OAuth;InitiateOAuth=GETANDREFRESH;OAuthClientId=your_client_id;OAuthClientSecret=your_client_secret;CallbackUrl=your_callback_url;`

func TestParseConnectionString(t *testing.T) {
	dir := t.TempDir()
	custom := psWriteFile(t, dir, "acme.yaml", `
name: acme
extends: procore
title: Acme's Procore
`, 0o644)
	broken := psWriteFile(t, dir, "broken.yaml", "name: broken\nenvironments: 3\n", 0o644)

	tests := []struct {
		name  string
		in    string
		want  []string // substrings of the error, all required; none means success
		check func(t *testing.T, c *Connection, o ConnectionOptions)
	}{
		{name: "minimal", in: psBase, check: func(t *testing.T, c *Connection, o ConnectionOptions) {
			psEq(t, "definition", c.Definition.Name, "procore")
			psEq(t, "client id", c.ClientID, "cid")
			psEq(t, "client secret", c.ClientSecret, "csecret")
			psEq(t, "redirect", c.RedirectURI, psCallback)
			psEq(t, "initiate", string(c.Initiate), "")
			if c.Scopes != nil || c.Fields != nil || o.StoreLocation != "" {
				t.Errorf("unset properties were set: scopes %v fields %v store %q", c.Scopes, c.Fields, o.StoreLocation)
			}
		}},
		{name: "names ignore case", in: "definition=procore;OAUTHCLIENTID=cid;oauthclientsecret=s;callbackurl=" + psCallback + ";authscheme=oauth;companyid=42",
			check: func(t *testing.T, c *Connection, _ ConnectionOptions) {
				psEq(t, "client id", c.ClientID, "cid")
				psEq(t, "field under its declared name", c.Fields["CompanyId"], "42")
			}},
		{name: "quoted values", in: psBase + `;OAuthAccessToken='a;b''c';OAuthRefreshToken="x""y;z"`,
			check: func(t *testing.T, c *Connection, _ ConnectionOptions) {
				psEq(t, "single quoted", c.AccessToken, "a;b'c")
				psEq(t, "double quoted", c.RefreshToken, `x"y;z`)
			}},
		{name: "whitespace and empty parts", in: " ; Definition = procore ;; OAuthClientId =  cid  ; OAuthClientSecret = ' s p ' ;CallbackURL=" + psCallback + " ;;",
			check: func(t *testing.T, c *Connection, _ ConnectionOptions) {
				psEq(t, "client id", c.ClientID, "cid")
				psEq(t, "quoted spaces kept", c.ClientSecret, " s p ")
			}},
		{name: "every property", in: psBase + ";Environment=sandbox;Scope=read, write  admin;BaseURL=https://api.example.com;LoginURL=https://login.example.com;" +
			"ConnectionId=acme-prod;OAuthSettingsLocation=/var/lib/tokens;CompanyId=562949953421312;InitiateOAuth=refresh;OAuthRefreshToken=rt;OAuthAccessToken=at;AuthScheme=OAUTH;Profile=",
			check: func(t *testing.T, c *Connection, o ConnectionOptions) {
				psEq(t, "environment", c.Environment, "sandbox")
				psEq(t, "scopes", strings.Join(c.Scopes, "|"), "read|write|admin")
				psEq(t, "base", c.BaseURL, "https://api.example.com")
				psEq(t, "login", c.LoginURL, "https://login.example.com")
				psEq(t, "id", c.ID, "acme-prod")
				psEq(t, "key", c.Key(), "acme-prod")
				psEq(t, "store", o.StoreLocation, "/var/lib/tokens")
				psEq(t, "company", c.Fields["CompanyId"], "562949953421312")
				psEq(t, "initiate", string(c.Initiate), string(InitiateRefresh))
				psEq(t, "refresh token", c.RefreshToken, "rt")
				psEq(t, "access token", c.AccessToken, "at")
			}},
		{name: "empty scope asks for none", in: psBase + ";Scope=", check: func(t *testing.T, c *Connection, _ ConnectionOptions) {
			if c.Scopes == nil || len(c.Scopes) != 0 {
				t.Errorf("Scopes = %#v, want empty and non-nil", c.Scopes)
			}
		}},
		{name: "client credentials", in: "Definition=procore-client-credentials;AuthScheme=OAUTH_CLIENT;OAuthClientId=cid;OAuthClientSecret=s;CompanyId=7",
			check: func(t *testing.T, c *Connection, _ ConnectionOptions) {
				psEq(t, "definition", c.Definition.Name, "procore-client-credentials")
			}},
		{name: "AuthScheme spelled OAuthClient", in: "Definition=procore-client-credentials;AuthScheme=OAuthClient;OAuthClientId=cid;OAuthClientSecret=s;CompanyId=7"},
		{name: "InitiateOAuth OFF needs only a token", in: "Definition=procore;InitiateOAuth=off;OAuthAccessToken=tok",
			check: func(t *testing.T, c *Connection, _ ConnectionOptions) {
				psEq(t, "initiate", string(c.Initiate), string(InitiateOff))
			}},
		{name: "Profile definition file", in: "Profile=" + custom + ";OAuthClientId=cid;OAuthClientSecret=s;CallbackURL=" + psCallback,
			check: func(t *testing.T, c *Connection, _ ConnectionOptions) {
				psEq(t, "definition", c.Definition.Name, "acme")
			}},
		{name: "Profile plus Definition picks from both", in: "Profile=" + custom + ";Definition=procore-v1;OAuthClientId=cid;OAuthClientSecret=s;CallbackURL=" + psCallback,
			check: func(t *testing.T, c *Connection, _ ConnectionOptions) {
				psEq(t, "definition", c.Definition.Name, "procore-v1")
			}},
		{name: "seed example corrected", in: "Definition=procore;Authscheme=OAuth;InitiateOAuth=GETANDREFRESH;OAuthClientId=your_client_id;OAuthClientSecret=your_client_secret;CallbackUrl=" + psCallback + ";",
			check: func(t *testing.T, c *Connection, _ ConnectionOptions) {
				psEq(t, "initiate", string(c.Initiate), string(InitiateGetAndRefresh))
				psEq(t, "redirect", c.RedirectURI, psCallback)
			}},

		{name: "seed example", in: psSeedExample, want: []string{
			"2 problems", `Profile "C:\\profiles\\Procore.apip" is not a definition file`, ".yaml", "Definition=NAME",
			`CallbackURL "your_callback_url" must be an absolute URL`}},
		{name: "duplicate property", in: psBase + ";oauthclientid=other", want: []string{"OAuthClientId is given twice", "keep one"}},
		{name: "duplicate field", in: psBase + ";CompanyId=1;COMPANYID=2", want: []string{"CompanyId is given twice"}},
		{name: "unknown property suggests", in: psBase + ";CallbackUri=x", want: []string{`unknown property "CallbackUri"`, "did you mean CallbackURL?", "known: Profile", "CompanyId"}},
		{name: "unknown property alias", in: psBase + ";redirect_uri=x", want: []string{`unknown property "redirect_uri"`, "did you mean CallbackURL?"}},
		{name: "unknown property far from all", in: psBase + ";Verbosity=3", want: []string{`unknown property "Verbosity" (known:`}},
		{name: "part without =", in: psBase + ";Verbose", want: []string{fmt.Sprintf("character %d", len(psBase)+2), `has no "="`, "Name=value"}},
		{name: "part without = after a secret", in: "OAuthClientSecret=a;b;Definition=procore", want: []string{"character 21", `quote it: OAuthClientSecret='...'`}},
		{name: "empty name", in: psBase + "; =x", want: []string{fmt.Sprintf(`"=" at character %d has no property name`, len(psBase)+3)}},
		{name: "unterminated quote", in: "Definition=procore;OAuthClientSecret='abc", want: []string{"OAuthClientSecret: the quoted value at character 38 has no closing '"}},
		{name: "text after closing quote", in: `Definition=procore;OAuthClientId="a"b`, want: []string{"OAuthClientId: unexpected text at character 37 after the closing quote"}},
		{name: "NTLM for an OAuth definition", in: psBase + ";AuthScheme=NTLM", want: []string{"AuthScheme=NTLM does not match definition procore, which uses OAUTH"}},
		{name: "bad AuthScheme", in: psBase + ";AuthScheme=Kerberos", want: []string{`AuthScheme "Kerberos" is not one of NONE, BASIC, OAUTH, OAUTH_CLIENT, APIKEY, SESSION, OAUTH1, NTLM`}},
		{name: "AuthScheme contradicts definition", in: psBase + ";AuthScheme=OAUTH_CLIENT",
			want: []string{"AuthScheme=OAUTH_CLIENT does not match definition procore, which uses OAUTH", "(procore-client-credentials)"}},
		{name: "AuthScheme BASIC for an OAuth definition", in: psBase + ";AuthScheme=basic", want: []string{"AuthScheme=BASIC does not match definition procore"}},
		{name: "bad InitiateOAuth", in: psBase + ";InitiateOAuth=sometimes", want: []string{`InitiateOAuth "sometimes" is not one of OFF, GETANDREFRESH, REFRESH`}},
		{name: "no definition", in: "OAuthClientId=cid", want: []string{"no definition: set Definition=NAME (one of procore, procore-client-credentials, procore-v1) or Profile="}},
		{name: "unknown definition", in: "Definition=procor", want: []string{`no connection definition named "procor"`, `did you mean "procore"?`}},
		{name: "Definition given a file", in: "Definition=./acme.yaml", want: []string{"looks like a file", "Profile=./acme.yaml"}},
		{name: "Profile missing", in: "Profile=" + filepath.Join(dir, "nope.yaml"), want: []string{"Profile: cannot read definitions from", "nope.yaml"}},
		{name: "Profile invalid", in: "Profile=" + broken, want: []string{"is not a valid definition file", "broken.yaml:2"}},
		{name: "checks without a definition", in: "Definition=nope;BaseURL=http://api.example.com;LoginURL=ftp:x;CallbackURL=" + psCallback,
			want: []string{"3 problems", "BaseURL \"http://api.example.com\" must use https", "LoginURL \"ftp:x\" must be an absolute URL"}},
		{name: "validation reports everything at once", in: "Definition=procore;CallbackURL=https://example.com/cb#frag;Environment=staging;CompanyId=abc",
			want: []string{"\n  - client id is missing", "client secret is missing", "must not contain a fragment", `no environment "staging"`}},
		{name: "field value checked", in: psBase + ";CompanyId=abc", want: []string{`field CompanyId: "abc" is not a whole number`}},
		{name: "required field", in: "Definition=procore-client-credentials;OAuthClientId=cid;OAuthClientSecret=s", want: []string{"needs a value for CompanyId"}},
		{name: "OFF without a token", in: "Definition=procore;InitiateOAuth=OFF", want: []string{"OAuthAccessToken is empty"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, o, err := ParseConnectionString(tt.in, definitions.Builtin())
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if tt.check != nil {
					tt.check(t, c, o)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error; want one containing %q", tt.want)
			}
			t.Log(err)
			if c != nil {
				t.Errorf("got a connection with the error")
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Source != "connection string" {
				t.Errorf("error %T is not a *ConfigError from the connection string", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestParseConnectionStringNilDefsMeansBuiltin(t *testing.T) {
	c, _, err := ParseConnectionString(psBase, nil)
	if err != nil || c.Definition != definitions.Builtin().All()[0] {
		t.Fatalf("ParseConnectionString(nil defs) = %v, %v; want the built-in procore", c, err)
	}
}

// psMarker is a secret value; no error may contain it or a piece of it.
const psMarker = "Xk7vQ2pL9w"

func psAssertNoSecret(t *testing.T, label string, err error) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error", label)
		return
	}
	for _, piece := range []string{psMarker, psMarker[:5], psMarker[5:]} {
		if strings.Contains(err.Error(), piece) {
			t.Errorf("%s: error contains secret text %q:\n%v", label, piece, err)
		}
	}
}

// psSecretSet has a definition with a secret field, to check those are kept
// out of errors too.
func psSecretSet(t *testing.T) *definitions.Set {
	t.Helper()
	set, err := definitions.Parse(definitions.Builtin(), definitions.File{Path: "partner.yaml", Data: []byte(`
name: partner
extends: procore
fields:
  PartnerKey:
    secret: true
    pattern: "[a-f0-9]{8}"
`)})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := set.Get("partner")
	if f, ok := d.Field("PartnerKey"); !ok || !f.Secret {
		t.Fatal("PartnerKey is not a secret field")
	}
	return set
}

func TestConnectionStringErrorsHideSecrets(t *testing.T) {
	defs := psSecretSet(t)
	props := []string{"OAuthClientSecret", "OAuthAccessToken", "OAuthRefreshToken", "PartnerKey"}
	// Each template is malformed once {P} is replaced by a secret property
	// and {S} by the secret.
	templates := []string{
		"Definition=partner;{P}='{S}",                                    // unterminated quote
		"Definition=partner;{P}='{S}'x",                                  // text after the quote
		`Definition=partner;{P}="{S}""`,                                  // unterminated after an escaped quote
		"Definition=partner;{P}={S};{S}",                                 // the secret again as a part without "="
		"Definition=partner;{P}=ab;{S}=cd",                               // the secret's tail as a property name
		"Definition=partner;{P}=ab;{S}",                                  // the secret's tail as a part without "="
		"Definition=partner;{P}={S};{P}={S}",                             // duplicate
		"Definition=nope;{P}={S};CallbackURL=x",                          // unknown definition
		"{P}={S}",                                                        // no definition
		"Profile=x.apip;{P}={S}",                                         // unusable profile
		"Definition=partner;{P}={S};AuthScheme=NTLM;InitiateOAuth=maybe", // bad enums
		"Definition=partner;{P}={S};AuthScheme=APIKEY",                   // scheme mismatch
		"Definition=partner;{P}={S};Environment=mars;BaseURL=x",          // validation
		"Definition=partner;{P}={S};InitiateOAuth=OFF;CompanyId=z",       // validation
		"Definition=partner;{P}={S};Scop=x",                              // unknown property
	}
	for _, p := range props {
		for i, tmpl := range templates {
			in := strings.NewReplacer("{P}", p, "{S}", psMarker).Replace(tmpl)
			c, _, err := ParseConnectionString(in, defs)
			if c != nil {
				t.Errorf("%s #%d: parsed %q", p, i, in)
			}
			psAssertNoSecret(t, fmt.Sprintf("%s #%d", p, i), err)
		}
	}
	// A secret field's value that fails its pattern is not repeated either.
	_, _, err := ParseConnectionString(psBase[len("Definition=procore"):]+";Definition=partner;PartnerKey="+psMarker, defs)
	psAssertNoSecret(t, "secret field pattern", err)
	if err != nil && !strings.Contains(err.Error(), "field PartnerKey: (secret) does not match") {
		t.Errorf("secret field error does not name the field: %v", err)
	}
}

func TestConnectionStringDoesNotPrintSecrets(t *testing.T) {
	c, _, err := ParseConnectionString(psBase+";OAuthAccessToken="+psMarker+";OAuthRefreshToken="+psMarker, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.ClientSecret = psMarker
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c)} {
		if strings.Contains(s, psMarker) {
			t.Errorf("printing the connection shows a secret: %s", s)
		}
	}
}

func TestSplitConnectionString(t *testing.T) {
	tests := []struct {
		in   string
		want []string // name=value
	}{
		{"", nil},
		{" ;; ", nil},
		{"a=1", []string{"a=1"}},
		{"a = 1 ; b=", []string{"a=1", "b="}},
		{"a=x=y", []string{"a=x=y"}},
		{"a='';b=\"\"", []string{"a=", "b="}},
		{"a=' '' ';b=\"'\"", []string{"a= ' ", "b='"}},
		{"a=it's", []string{"a=it's"}},
		{"a='x' ;b=y", []string{"a=x", "b=y"}},
	}
	for _, tt := range tests {
		pairs, err := splitConnectionString(tt.in)
		if err != nil {
			t.Errorf("split(%q): %v", tt.in, err)
			continue
		}
		var got []string
		for _, p := range pairs {
			got = append(got, p.name+"="+p.value)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("split(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestLoadConnectionFile(t *testing.T) {
	const full = `# the example from the package docs
definition: procore
id: acme-prod
environment: sandbox
client_id: ${file:client_id.txt}
client_secret: ${env:PARSE_TEST_SECRET}
redirect_uri: http://127.0.0.1:8765/callback
scopes: [read, write]
fields: {CompanyId: 562949953421312}
base_url: https://api.example.com
login_url: https://login.example.com
initiate: getandrefresh
store: tokens.db
`
	const minimal = "definition: procore\nclient_id: cid\nclient_secret: literal\nredirect_uri: " + psCallback + "\n"
	type file struct {
		data string
		mode os.FileMode
	}
	tests := []struct {
		name  string
		files map[string]file // the connection file is conn.yaml
		env   map[string]string
		want  []string // substrings of the error; none means success
		check func(t *testing.T, c *Connection, o ConnectionOptions)
	}{
		{name: "full example", files: map[string]file{"conn.yaml": {full, 0o644}, "client_id.txt": {"cid\n", 0o644}},
			env: map[string]string{"PARSE_TEST_SECRET": "from-env"},
			check: func(t *testing.T, c *Connection, o ConnectionOptions) {
				psEq(t, "definition", c.Definition.Name, "procore")
				psEq(t, "id", c.ID, "acme-prod")
				psEq(t, "environment", c.Environment, "sandbox")
				psEq(t, "client id from file, newline trimmed", c.ClientID, "cid")
				psEq(t, "client secret from env", c.ClientSecret, "from-env")
				psEq(t, "redirect", c.RedirectURI, psCallback)
				psEq(t, "scopes", strings.Join(c.Scopes, "|"), "read|write")
				psEq(t, "big integer field kept exactly", c.Fields["CompanyId"], "562949953421312")
				psEq(t, "base", c.BaseURL, "https://api.example.com")
				psEq(t, "login", c.LoginURL, "https://login.example.com")
				psEq(t, "initiate", string(c.Initiate), string(InitiateGetAndRefresh))
				psEq(t, "store", o.StoreLocation, "tokens.db")
			}},
		{name: "literal secret allowed", files: map[string]file{"conn.yaml": {minimal, 0o644}},
			check: func(t *testing.T, c *Connection, _ ConnectionOptions) {
				psEq(t, "client secret", c.ClientSecret, "literal")
				if c.Scopes != nil {
					t.Errorf("Scopes = %#v, want nil (the definition's)", c.Scopes)
				}
			}},
		{name: "empty scope list", files: map[string]file{"conn.yaml": {minimal + "scopes: []\n", 0o644}},
			check: func(t *testing.T, c *Connection, _ ConnectionOptions) {
				if c.Scopes == nil || len(c.Scopes) != 0 {
					t.Errorf("Scopes = %#v, want empty and non-nil", c.Scopes)
				}
			}},
		{name: "definition file relative to the connection file", files: map[string]file{
			"conn.yaml":      {strings.Replace(minimal, "procore", "defs/acme.yaml", 1) + "fields: {companyid: 5}\n", 0o644},
			"defs/acme.yaml": {"name: acme\nextends: procore\n", 0o644}},
			check: func(t *testing.T, c *Connection, _ ConnectionOptions) {
				psEq(t, "definition", c.Definition.Name, "acme")
				psEq(t, "field under its declared name", c.Fields["CompanyId"], "5")
			}},
		{name: "secret file private", files: map[string]file{"conn.yaml": {strings.Replace(minimal, "literal", "${file:secret}", 1), 0o644}, "secret": {"s\r\n", 0o600}},
			check: func(t *testing.T, c *Connection, _ ConnectionOptions) {
				psEq(t, "secret, CRLF trimmed", c.ClientSecret, "s")
			}},
		{name: "one trailing newline trimmed", files: map[string]file{"conn.yaml": {strings.Replace(minimal, "cid", "${file:id}", 1), 0o644}, "id": {"cid\n\n", 0o644}},
			check: func(t *testing.T, c *Connection, _ ConnectionOptions) { psEq(t, "client id", c.ClientID, "cid\n") }},
		{name: "env set but empty is a value", files: map[string]file{"conn.yaml": {minimal + "id: ${env:PARSE_TEST_EMPTY}\n", 0o644}},
			env:   map[string]string{"PARSE_TEST_EMPTY": ""},
			check: func(t *testing.T, c *Connection, _ ConnectionOptions) { psEq(t, "id", c.ID, "") }},

		{name: "missing file", want: []string{"cannot read connection file", "conn.yaml: no such file"}},
		{name: "empty file", files: map[string]file{"conn.yaml": {"# nothing\n", 0o644}}, want: []string{"conn.yaml: the file is empty"}},
		{name: "yaml syntax", files: map[string]file{"conn.yaml": {"definition: procore\nclient_id: x\n  y: z\n", 0o644}}, want: []string{"conn.yaml:3: mapping values are not allowed"}},
		{name: "unknown key", files: map[string]file{"conn.yaml": {minimal + "client_secrt: x\n", 0o644}},
			want: []string{`conn.yaml:5: unknown key "client_secrt"; did you mean client_secret?`, "known keys: definition, id"}},
		{name: "wrong types", files: map[string]file{"conn.yaml": {minimal + "scopes: read\nfields: [1]\n", 0o644}},
			want: []string{"2 problems", "conn.yaml:5: expected a list of values, found a string", "conn.yaml:6: expected a mapping of names to values, found a list"}},
		{name: "not a mapping", files: map[string]file{"conn.yaml": {"- procore\n", 0o644}}, want: []string{"conn.yaml:1: expected a mapping of connection settings"}},
		{name: "duplicate key", files: map[string]file{"conn.yaml": {minimal + "client_id: again\n", 0o644}}, want: []string{"conn.yaml:5:", `"client_id" already defined at line 2`}},
		{name: "two documents", files: map[string]file{"conn.yaml": {minimal + "---\ndefinition: x\n", 0o644}}, want: []string{"one YAML document"}},
		{name: "no definition", files: map[string]file{"conn.yaml": {"client_id: x\n", 0o644}}, want: []string{"conn.yaml: definition: missing: name a definition (one of procore"}},
		{name: "unknown definition", files: map[string]file{"conn.yaml": {"\ndefinition: procor\n", 0o644}}, want: []string{`conn.yaml:2: definition: no connection definition named "procor"; did you mean "procore"?`}},
		{name: "missing definition file", files: map[string]file{"conn.yaml": {"definition: defs/none.yaml\n", 0o644}}, want: []string{"conn.yaml:1: definition: definition file: cannot read definitions from", "none.yaml"}},
		{name: "env unset", files: map[string]file{"conn.yaml": {strings.Replace(minimal, "literal", "${env:PARSE_TEST_UNSET}", 1), 0o644}},
			want: []string{"conn.yaml:3: client_secret: environment variable PARSE_TEST_UNSET is not set"}},
		{name: "empty reference", files: map[string]file{"conn.yaml": {minimal + "id: ${env:}\n", 0o644}}, want: []string{"conn.yaml:5: id: ${env:} names no variable"}},
		{name: "file missing", files: map[string]file{"conn.yaml": {minimal + "fields:\n  CompanyId: ${file:company}\n", 0o644}},
			want: []string{"conn.yaml:6: fields.CompanyId: cannot read ${file:company}", "no such file"}},
		{name: "file is a directory", files: map[string]file{"conn.yaml": {minimal + "store: ${file:defs}\n", 0o644}, "defs/x": {"", 0o644}},
			want: []string{"conn.yaml:5: store: cannot read ${file:defs}", "it is a directory"}},
		{name: "partial reference", files: map[string]file{"conn.yaml": {minimal + "base_url: https://${env:HOST}.example.com\n", 0o644}},
			want: []string{"conn.yaml:5: base_url: a ${env:NAME} or ${file:PATH} reference must be the whole value"}},
		{name: "scope reference located", files: map[string]file{"conn.yaml": {minimal + "scopes:\n  - read\n  - ${env:PARSE_TEST_UNSET}\n", 0o644}},
			want: []string{"conn.yaml:7: scopes[1]: environment variable PARSE_TEST_UNSET is not set"}},
		{name: "bad initiate", files: map[string]file{"conn.yaml": {minimal + "initiate: later\n", 0o644}}, want: []string{`conn.yaml:5: initiate: "later" is not one of OFF, GETANDREFRESH, REFRESH`}},
		{name: "field named twice", files: map[string]file{"conn.yaml": {minimal + "fields: {CompanyId: 1, companyid: 2}\n", 0o644}}, want: []string{"conn.yaml:5: fields.companyid: CompanyId is given twice"}},
		{name: "validation", files: map[string]file{"conn.yaml": {"definition: procore\nclient_id: cid\nredirect_uri: your_callback_url\nfields: {Company: 1}\n", 0o644}},
			want: []string{"conn.yaml has 3 problems", "client secret is missing", `"your_callback_url" must be an absolute URL`, `definition procore has no field "Company"`}},
		{name: "every problem at once", files: map[string]file{"conn.yaml": {"definition: ${env:PARSE_TEST_UNSET}\nclient_secret: ${file:nope}\n", 0o644}},
			want: []string{"2 problems", "conn.yaml:1: definition: environment variable", "conn.yaml:2: client_secret: cannot read"}},
	}
	if runtime.GOOS != "windows" {
		tests = append(tests, struct {
			name  string
			files map[string]file
			env   map[string]string
			want  []string
			check func(t *testing.T, c *Connection, o ConnectionOptions)
		}{name: "secret file readable by others", files: map[string]file{"conn.yaml": {minimal + "refresh_token: ${file:rt}\n", 0o644}, "rt": {"x", 0o640}},
			want: []string{"conn.yaml:5: refresh_token:", "other users may read it (mode 0640); run chmod 600"}},
			struct {
				name  string
				files map[string]file
				env   map[string]string
				want  []string
				check func(t *testing.T, c *Connection, o ConnectionOptions)
			}{name: "non-secret file may be shared", files: map[string]file{"conn.yaml": {minimal + "id: ${file:id}\n", 0o644}, "id": {"acme", 0o644}},
				check: func(t *testing.T, c *Connection, _ ConnectionOptions) { psEq(t, "id", c.ID, "acme") }})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, f := range tt.files {
				psWriteFile(t, dir, name, f.data, f.mode)
			}
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			path := filepath.Join(dir, "conn.yaml")
			c, o, err := LoadConnectionFile(path, definitions.Builtin())
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if tt.check != nil {
					tt.check(t, c, o)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error; want one containing %q", tt.want)
			}
			t.Log(err)
			if c != nil {
				t.Errorf("got a connection with the error")
			}
			msg := strings.ReplaceAll(err.Error(), dir+string(filepath.Separator), "")
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error does not contain %q:\n%v", w, msg)
				}
			}
		})
	}
}

func TestConnectionFileErrorsHideSecrets(t *testing.T) {
	defs := psSecretSet(t)
	bodies := []string{
		"client_secret: [" + psMarker + "\n",                                 // syntax error
		"client_secret: " + psMarker + ": x\n",                               // mapping value in a scalar
		"client_secret: {a: " + psMarker + "}\n",                             // wrong type
		"scopes: " + psMarker + "\n",                                         // a string where a list goes (yaml.v3 quotes it)
		"fields: " + psMarker + "\n",                                         // a string where a mapping goes
		"access_token: x" + psMarker + "${env:X}\n",                          // partial reference
		"refresh_token: \"" + psMarker + "\n",                                // unterminated quote
		"fields: {PartnerKey: " + psMarker + "}\n",                           // secret field fails its pattern
		"client_secret: " + psMarker + "\nclient_secret: " + psMarker + "\n", // duplicate key
		"client_secret: " + psMarker + "\ninitiate: nope\nenvironment: x\n",  // validation
	}
	for i, body := range bodies {
		dir := t.TempDir()
		path := psWriteFile(t, dir, "conn.yaml", "definition: partner\nclient_id: cid\n"+body, 0o600)
		_, _, err := LoadConnectionFile(path, defs)
		psAssertNoSecret(t, fmt.Sprintf("body #%d", i), err)
	}
}

func psEq(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}

func psWriteFile(t *testing.T, dir, name, data string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // past the umask
		t.Fatal(err)
	}
	return p
}
