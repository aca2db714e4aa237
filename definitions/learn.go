package definitions

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/connector-engine/connector/templates"
)

// Where a learned field's value comes from (fields.<name>.learn.from).
const (
	// LearnCallback: a query parameter of the authorization callback, next
	// to the code (QuickBooks realmId).
	LearnCallback = "callback"
	// LearnTokenResponse: a value of the token response, by body path
	// (Salesforce instance_url, Slack team.id).
	LearnTokenResponse = "token_response"
	// LearnRequest: a GET request made with the new token right after
	// connecting (Xero GET /connections gives the tenant id).
	LearnRequest = "request"
)

// How a value is chosen when a learn request offers several.
const (
	ChooseFirst = "first" // the first item
	ChooseAsk   = "ask"   // the caller asks the person connecting (Flow.Choose); the only one when there is one
)

// Learn says how a field's value is learned when connecting, instead of
// being given by the connection. Learned values are kept with the token
// (sealed), renewed when a refresh response carries them again, and fill
// their placeholder in base_url, request headers and query, and actions.
type Learn struct {
	From  string   // LearnCallback, LearnTokenResponse or LearnRequest
	Param string   // callback: the query parameter
	Paths []string // token_response and request: body paths tried in order; the first present wins
	// URL is, for a request, where it is sent (GET, with the new access
	// token as send_token says); its origin must be the API's, the login
	// URL's or the token endpoint's once expanded.
	URL    *templates.Template
	Items  string // request: body path of the array of candidates; "" when the body is the array (or one object)
	Label  string // request: body path, within an item, of a name shown when choosing
	Choose string // request: ChooseFirst (the default) or ChooseAsk
}

// Source names where the value comes from, for messages: "the callback's
// realmId parameter", "the token response's instance_url".
func (l *Learn) Source() string {
	switch l.From {
	case LearnCallback:
		return "the callback's " + l.Param + " parameter"
	case LearnTokenResponse:
		return "the token response's " + strings.Join(l.Paths, " or ")
	default:
		src := "the request"
		if l.URL != nil {
			src = "GET " + l.URL.Source()
		}
		return src + " (" + strings.Join(l.Paths, " or ") + ")"
	}
}

// Learned returns the definition's learned fields, in file order.
func (d *Definition) Learned() []*Field {
	var out []*Field
	for i := range d.Fields {
		if d.Fields[i].Learn != nil {
			out = append(out, &d.Fields[i])
		}
	}
	return out
}

type rawLearn struct {
	From   string    `yaml:"from"`
	Param  string    `yaml:"param"`
	Path   yaml.Node `yaml:"path"`
	URL    string    `yaml:"url"`
	Items  *string   `yaml:"items"`
	Label  string    `yaml:"label"`
	Choose string    `yaml:"choose"`
}

// learnKeys are the keys of learn and the sources each applies to.
var learnKeys = map[string][]string{
	"param":  {LearnCallback},
	"path":   {LearnTokenResponse, LearnRequest},
	"url":    {LearnRequest},
	"items":  {LearnRequest},
	"label":  {LearnRequest},
	"choose": {LearnRequest},
}

// callbackReserved are callback parameters the flow itself reads.
var callbackReserved = []string{"code", "state", "error", "error_description", "error_uri", "iss"}

// buildLearned reads every field's learn section, once the auth section is
// known: learning happens when connecting, so only OAuth schemes have it.
func (b *builder) buildLearned() {
	d := b.def
	for i := range d.Fields {
		f := &d.Fields[i]
		ptr := "/fields/" + escapePointer(f.Name) + "/learn"
		n := b.given(ptr)
		if n == nil || resolve(n).Kind != yaml.MappingNode {
			continue
		}
		var rl rawLearn
		_ = n.Decode(&rl) // type errors come from the schema
		l := &Learn{From: rl.From, Param: rl.Param, Label: rl.Label, Choose: rl.Choose}
		if d.Auth.OAuth == nil {
			b.errorf(ptr, "values are learned when connecting, and scheme %s has no connect step; remove learn and let the connection give %s", d.Auth.Scheme, f.Name)
			continue
		}
		ok := true
		given := resolve(n)
		for j := 0; j+1 < len(given.Content); j += 2 {
			key := given.Content[j].Value
			if froms, known := learnKeys[key]; known && !containsString(froms, l.From) {
				b.errorf(ptr+"/"+key, "%s applies to learn.from %s, not %s; remove it", key, strings.Join(froms, " and "), l.From)
				ok = false
			}
		}
		switch l.From {
		case LearnCallback:
			if g := d.Auth.OAuth.GrantType; g != GrantAuthorizationCode {
				what := "client credentials have"
				if g == GrantDeviceCode {
					what = "the device grant has"
				}
				b.errorf(ptr+"/from", "%s no callback; learn %s from the token_response or a request", what, f.Name)
				ok = false
			}
			if l.Param == "" {
				b.errorf(ptr, "learn.from callback needs param, the callback's query parameter that carries the value (QuickBooks: realmId)")
				ok = false
			} else if containsString(callbackReserved, l.Param) {
				b.errorf(ptr+"/param", "%q is a parameter of the OAuth callback itself; name the provider's own parameter (such as realmId)", l.Param)
				ok = false
			}
		case LearnTokenResponse, LearnRequest:
			var pathsOK bool
			if l.Paths, pathsOK = b.learnPaths(ptr+"/path", &rl.Path); l.Paths == nil && pathsOK {
				b.errorf(ptr, "learn.from %s needs path, the body path of the value (a name, dotted names such as team.id, a JSON Pointer, or a list tried in order)", l.From)
			}
			ok = ok && pathsOK && l.Paths != nil
		}
		if l.From == LearnRequest {
			if rl.URL == "" {
				b.errorf(ptr, "learn.from request needs url, where the GET request is sent (Xero: https://api.xero.com/connections)")
				ok = false
			} else if l.URL = b.compile(ptr+"/url", rl.URL, templates.URL, scopeLearnURL); l.URL == nil {
				ok = false
			} else {
				// It may use what the callback and the token response
				// taught (known by then), not what another request learns.
				for _, ph := range l.URL.Placeholders() {
					if ph.Var >= NumBuiltinVars && b.learnedFrom[ph.Var] == LearnRequest {
						b.offsetReporter(ptr+"/url")(SeverityError, ph.Offset,
							fmt.Sprintf("${%s} is learned by a request too, which may run after this one; a learn request may use fields and values learned from the callback or the token response", ph.Name))
						ok = false
					}
				}
			}
			if rl.Items != nil {
				l.Items = *rl.Items
				if l.Items != "" {
					ok = b.checkBodyPath(ptr+"/items", l.Items) && ok
				}
			}
			if l.Label != "" {
				ok = b.checkBodyPath(ptr+"/label", l.Label) && ok
			}
			defaults(&l.Choose, ChooseFirst)
			if l.Choose == ChooseAsk && d.Auth.OAuth.GrantType == GrantClientCredentials {
				b.errorf(ptr+"/choose", "client credentials are fetched without a person to ask; use choose: first, or let the connection give %s", f.Name)
				ok = false
			}
		}
		if ok {
			f.Learn = l
		}
	}
}

func (b *builder) learnPaths(ptr string, n *yaml.Node) (paths []string, ok bool) {
	n = resolve(n)
	if n == nil {
		return nil, true
	}
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Value != "" {
			paths = []string{n.Value}
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			if c.Kind == yaml.ScalarNode && c.Value != "" {
				paths = append(paths, c.Value)
			}
		}
	}
	for i, p := range paths {
		at := ptr
		if n.Kind == yaml.SequenceNode {
			at = fmt.Sprintf("%s/%d", ptr, i)
		}
		if !b.checkBodyPath(at, p) {
			return nil, false
		}
	}
	return paths, true
}

func (b *builder) checkBodyPath(ptr, p string) bool {
	if msg := BodyPathProblem(p); msg != "" {
		b.errorf(ptr, "%s", msg)
		return false
	}
	return true
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// checkLearnedTokenHosts warns when a learned field without a pattern forms
// the host of the refresh, revocation or introspection request: those carry
// the refresh token and the client secret, so the value the token response
// names should be held to the provider's hosts.
func (b *builder) checkLearnedTokenHosts() {
	o := b.def.Auth.OAuth
	if o == nil {
		return
	}
	for _, u := range []struct {
		key string
		t   *templates.Template
	}{{"refresh_uri", o.RefreshURI}, {"revoke_uri", o.RevokeURI}, {"introspection_uri", o.IntrospectionURI}} {
		if u.t == nil {
			continue
		}
		ph := u.t.Placeholders()
		if len(ph) == 0 || ph[0].Offset != 0 || ph[0].Var < NumBuiltinVars {
			continue
		}
		f, ok := b.def.Field(ph[0].Name)
		if !ok || f.Learn == nil || f.Pattern != nil {
			continue
		}
		b.warnAt(warnLearnedTokenHost, "/auth/oauth/"+u.key, 0, fmt.Sprintf("${%s} is learned from %s and chooses where %s goes, with the client's credentials; give field %s a pattern of the provider's hosts", ph[0].Name, f.Learn.Source(), u.key, f.Name))
	}
}
