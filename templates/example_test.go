package templates_test

import (
	"fmt"

	"github.com/connector-engine/connector/templates"
)

func ExampleCompile() {
	// The variables a definition knows, each with its index.
	vars := templates.NewVars()
	loginURL, _ := vars.Add("LoginUrl", templates.URLValued)
	code, _ := vars.Add("code", templates.Secret)
	clientID, _ := vars.Add("ClientId", 0)
	clientSecret, _ := vars.Add("ClientSecret", templates.Secret)
	redirectURI, _ := vars.Add("RedirectUri", 0)

	// Compile once, when the definition loads. Names match in any case.
	t, err := templates.Compile(
		"${LoginUrl}/oauth/token?grant_type=authorization_code&code=${code}"+
			"&client_id=${clientId}&client_secret=${clientSecret}&redirect_uri=${redirectUri}",
		templates.URL, vars)
	if err != nil {
		fmt.Println(err)
		return
	}

	// Expand per request; values are escaped where they stand.
	values := make([]string, vars.Len())
	values[loginURL] = "https://login.procore.com/"
	values[code] = "abc123"
	values[clientID] = "my-client"
	values[clientSecret] = "p&ss=word+/"
	values[redirectURI] = "http://127.0.0.1:8765/callback"
	uri, err := t.Expand(values)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(uri)
	fmt.Println(t.Redacted(values))

	// Mistakes are found at load time, with the offset of the placeholder.
	_, err = templates.Compile("https://${ClientId}.example.com/", templates.URL, vars)
	fmt.Println(err)
	_, err = templates.Compile("${LoginUrl}/oauth/authorize?client_id=${client_id}", templates.URL, vars)
	fmt.Println(err)

	// Output:
	// https://login.procore.com/oauth/token?grant_type=authorization_code&code=abc123&client_id=my-client&client_secret=p%26ss%3Dword%2B%2F&redirect_uri=http%3A%2F%2F127.0.0.1%3A8765%2Fcallback
	// https://login.procore.com/oauth/token?grant_type=authorization_code&code=***&client_id=my-client&client_secret=***&redirect_uri=http%3A%2F%2F127.0.0.1%3A8765%2Fcallback
	// template: byte 8: ${ClientId} cannot form part of the URL's scheme or host: only a URL-valued placeholder such as ${LoginUrl} can, at the very start of the template, or, in the host, a field of type host_label (one DNS label, as in https://${ClientId}.example.com) or hostname
	// template: byte 38: unknown placeholder ${client_id}; did you mean ${ClientId}?
}
