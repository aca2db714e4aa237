package definitions_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/connector-engine/connector/definitions"
)

// minimal is a valid code-flow definition the rule tests start from.
const minimal = `name: acme
title: Acme
base_url: https://api.acme.test
auth:
  scheme: oauth
  oauth:
    version: V2
    initiate_uri: https://auth.acme.test/authorize
    token_request_uri: https://auth.acme.test/token
`

// withActions is minimal with a CompanyId field, ending in "actions:" (line 12).
const withActions = minimal + "fields:\n  CompanyId: {type: integer}\nactions:\n"

// withWebhooks is minimal with a CompanyId field, ending in "webhooks:" (line 12).
const withWebhooks = minimal + "fields:\n  CompanyId: {type: integer}\nwebhooks:\n"

func parse(t *testing.T, files ...definitions.File) (*definitions.Set, []definitions.Diagnostic) {
	t.Helper()
	set, err := definitions.Parse(definitions.Builtin(), files...)
	var de *definitions.Error
	if errors.As(err, &de) {
		return nil, de.Diagnostics
	}
	if err != nil {
		t.Fatalf("unexpected error type %T: %v", err, err)
	}
	return set, set.Warnings()
}

func file(name, src string) definitions.File {
	return definitions.File{Path: name, Data: []byte(src)}
}

// TestRules has one row per schema or semantic rule: a definition that
// breaks it and the diagnostic expected (position, field, words).
func TestRules(t *testing.T) {
	rows := []struct {
		name     string
		src      string
		severity definitions.Severity
		pos      string // "line:column" expected
		field    string
		contains string
	}{
		{"yaml syntax", "name: a\n\tbad: tab\n", "error", "2:1", "", "YAML syntax"},
		{"empty file", "", "error", "0:0", "", "the file is empty"},
		{"root is a scalar", "hello\n", "error", "1:1", "", "holds a single value"},
		{"duplicate key", minimal + "title: again\n", "error", "10:1", "title", `duplicate key "title" (first given at line 2)`},
		{"unknown key suggests", strings.Replace(minimal, "base_url", "baseurl", 1), "error", "3:1", "baseurl", `did you mean "base_url"?`},
		{"unknown key lists allowed", strings.Replace(minimal, "    version: V2", "    version: V2\n    zzzzzz: 1", 1), "error", "8:5", "auth.oauth.zzzzzz", "allowed here: assertion, authorize_query, authorize_uri,"},
		{"wrong type", strings.Replace(minimal, "title: Acme", "title: [Acme]", 1), "error", "2:8", "title", "must be string, not a list"},
		{"missing required root keys", "name: acme\nbase_url: https://x.test\n", "error", "1:1", "auth", `missing required key "auth"`},
		{"missing nested required", strings.Replace(minimal, "    version: V2\n", "", 1), "error", "6:3", "auth.oauth.version", `missing required key "version"`},
		{"enum", strings.Replace(minimal, "scheme: oauth", "scheme: OAuth", 1), "error", "5:11", "auth.scheme", `must be one of "oauth"`},
		{"name pattern", strings.Replace(minimal, "name: acme", "name: ACME", 1), "error", "1:7", "name", "must be lowercase letters, digits, '.', '_' and '-'"},
		{"relative url", strings.Replace(minimal, "https://auth.acme.test/token", "/token", 1), "error", "9:24", "auth.oauth.token_request_uri", "must be an absolute URL"},
		{"http off loopback", strings.Replace(minimal, "https://api.acme.test", "http://api.acme.test", 1), "error", "3:11", "base_url", "use https://"},
		{"http on loopback is fine", strings.Replace(minimal, "https://api.acme.test", "http://127.0.0.1:8080", 1), "", "", "", ""},
		{"userinfo in url", strings.Replace(minimal, "https://api.acme.test", "https://u:p@api.acme.test", 1), "error", "3:11", "base_url", "must not carry a user name or password"},
		{"v1 needs authorize_uri", strings.Replace(strings.Replace(minimal, "V2", "V1", 1), "    initiate_uri: https://auth.acme.test/authorize\n", "", 1), "error", "6:3", "auth.oauth", "missing authorize_uri"},
		{"v1 refuses initiate_uri", strings.Replace(minimal, "V2", "V1", 1), "error", "6:3", "auth.oauth", "missing authorize_uri"},
		{"v2 code needs token uri", strings.Replace(minimal, "    token_request_uri: https://auth.acme.test/token\n", "", 1), "error", "6:3", "auth.oauth", "missing token_request_uri"},
		{"v2 code needs initiate uri", strings.Replace(minimal, "    initiate_uri: https://auth.acme.test/authorize\n", "", 1), "error", "6:3", "auth.oauth", "missing initiate_uri"},
		{"v2 refuses authorize_uri", strings.Replace(minimal, "    version: V2", "    version: V2\n    authorize_uri: https://a.test/x", 1), "error", "8:20", "auth.oauth.authorize_uri", "authorize_uri is V1 only"},
		{"client credentials refuse initiate", strings.Replace(minimal, "scheme: oauth", "scheme: oauth_client", 1), "error", "8:19", "auth.oauth.initiate_uri", "client credentials involve no user"},
		{"client credentials refuse pkce", strings.Replace(strings.Replace(minimal, "scheme: oauth", "scheme: oauth_client", 1), "    initiate_uri: https://auth.acme.test/authorize\n", "    pkce: true\n", 1), "error", "8:11", "auth.oauth.pkce", "PKCE protects a code flow"},
		{"client credentials refuse V1", strings.Replace(strings.Replace(strings.Replace(minimal, "scheme: oauth", "scheme: oauth_client", 1), "    initiate_uri: https://auth.acme.test/authorize\n", "", 1), "V2", "V1", 1), "error", "7:14", "auth.oauth.version", "client credentials are an OAuth V2 grant"},
		{"grant contradicts scheme", strings.Replace(minimal, "    version: V2", "    version: V2\n    grant_type: client_credentials", 1), "error", "8:17", "auth.oauth.grant_type", "contradicts auth.scheme"},
		{"section for other scheme", minimal + "  basic:\n    username: u\n    password: p\n", "error", "10:3", "auth.basic", "auth.basic is given but the scheme is \"oauth\""},
		{"scheme without section", "name: a\ntitle: A\nbase_url: https://a.test\nauth:\n  scheme: apikey\n", "error", "4:1", "auth", "needs an auth.apikey section"},
		{"unknown placeholder", strings.Replace(minimal, "/authorize", "/authorize?c=${ClientIdd}", 1), "error", "8:54", "auth.oauth.initiate_uri", "did you mean ${ClientId}?"},
		{"unclosed placeholder", strings.Replace(minimal, "/authorize", "/authorize?c=${ClientId", 1), "error", "8:54", "auth.oauth.initiate_uri", `unclosed "${"`},
		{"placeholder case-insensitive", strings.Replace(minimal, "/authorize", "/authorize?c=${cLiEnTiD}", 1), "", "", "", ""},
		{"code outside exchange", strings.Replace(minimal, "/authorize", "/authorize?c=${code}", 1), "error", "8:54", "auth.oauth.initiate_uri", "${code} has no value in the authorization request"},
		{"refreshToken outside refresh", strings.Replace(minimal, "/token", "/token?r=${refreshToken}", 1), "error", "9:55", "auth.oauth.token_request_uri", "a refresh token exists only in the refresh request"},
		{"state outside authorization", strings.Replace(minimal, "/token", "/token?s=${State}", 1), "error", "9:55", "auth.oauth.token_request_uri", "state exists only in the authorization request"},
		{"secret in browser url", strings.Replace(minimal, "/authorize", "/authorize?s=${ClientSecret}", 1), "error", "8:54", "auth.oauth.initiate_uri", "never sent to the browser"},
		{"code in client credentials", strings.Replace(strings.Replace(strings.Replace(minimal, "scheme: oauth", "scheme: oauth_client", 1), "    initiate_uri: https://auth.acme.test/authorize\n", "", 1), "/token", "/token?c=${code}", 1), "error", "8:55", "auth.oauth.token_request_uri", "${code} has no value in the client-credentials token request"},
		{"field forms host", strings.Replace(minimal, "https://api.acme.test", "https://${Tenant}.acme.test", 1) + "fields:\n  Tenant: {}\n", "error", "3:19", "base_url", "cannot form part of the URL's scheme or host"},
		{"url field forms host", strings.Replace(minimal, "https://api.acme.test", "${Instance}/api", 1) + "fields:\n  Instance: {type: url, required: true}\n", "", "", "", ""},
		{"challenge needs pkce", strings.Replace(strings.Replace(minimal, "/authorize", "/authorize?cc=${CodeChallenge}", 1), "    version: V2", "    version: V2\n    pkce: false", 1), "error", "9:55", "auth.oauth.initiate_uri", "pkce is off"},
		{"login url needed", strings.Replace(minimal, "https://auth.acme.test/token", "${LoginUrl}/token", 1), "error", "3:11", "base_url", "has no login_url"},
		{"default environment unknown", strings.Replace(minimal, "base_url: https://api.acme.test", "default_environment: sandbx\nenvironments:\n  production: {base_url: 'https://a.test'}\n  sandbox: {base_url: 'https://s.test'}", 1), "error", "3:22", "default_environment", `did you mean "sandbox"?`},
		{"environment without base url", strings.Replace(minimal, "base_url: https://api.acme.test", "environments:\n  production: {title: P}", 1), "error", "4:3", "environments.production", "has no base_url"},
		{"no base url at all", strings.Replace(minimal, "base_url: https://api.acme.test\n", "", 1), "error", "1:1", "", "missing base_url"},
		{"default_environment without environments", minimal + "default_environment: prod\n", "error", "10:22", "default_environment", "the only environment is \"default\""},
		{"field regexp", minimal + "fields:\n  Id: {pattern: '('}\n", "error", "11:17", "fields.Id.pattern", "not a valid regular expression"},
		{"field default type", minimal + "fields:\n  Id: {type: boolean, default: 'yes'}\n", "error", "11:32", "fields.Id.default", "must be true or false"},
		{"field default pattern", minimal + "fields:\n  Id: {pattern: '[0-9]+', default: '12a'}\n", "error", "11:36", "fields.Id.default", "does not match the pattern [0-9]+"},
		{"field default url", minimal + "fields:\n  Site: {type: url, default: 'ftp://x'}\n", "error", "11:30", "fields.Site.default", `has the scheme "ftp"`},
		{"field named like builtin", minimal + "fields:\n  REFRESHTOKEN: {}\n", "error", "11:3", "fields.REFRESHTOKEN", "taken by the builtin placeholder ${refreshToken}"},
		{"fields differing in case", minimal + "fields:\n  Id: {}\n  ID: {}\n", "error", "12:3", "fields.ID", "differs from another field only in letter case"},
		{"required with default", minimal + "fields:\n  Id: {required: true, default: '1'}\n", "warning", "11:18", "fields.Id.required", "never missing"},
		{"header from secret field is fine", minimal + "fields:\n  Key: {secret: true}\nrequest:\n  headers:\n    X-Key: ${Key}\n", "", "", "", ""},
		{"header name", minimal + "request:\n  headers:\n    'X Key': v\n", "error", "12:5", "request.headers.X Key", "not a valid HTTP header name"},
		{"header uses code", minimal + "request:\n  headers:\n    X-C: ${code}\n", "error", "12:10", "request.headers.X-C", "${code} has no value in API requests"},
		{"get with body", strings.Replace(minimal, "    version: V2", "    version: V2\n    token_request: {method: GET}", 1), "error", "8:29", "auth.oauth.token_request.method", "a GET token request has no body"},
		{"default_expires_in", strings.Replace(minimal, "    version: V2", "    version: V2\n    token_response: {default_expires_in: 0s}", 1), "error", "8:42", "auth.oauth.token_response.default_expires_in", "not a positive duration"},
		{"refresh_margin", strings.Replace(minimal, "    version: V2", "    version: V2\n    token_response: {refresh_margin: soon}", 1), "error", "8:38", "auth.oauth.token_response.refresh_margin", "not a positive duration such as 30s or 2m"},
		{"keep_alive idle_refresh", strings.Replace(minimal, "    version: V2", "    version: V2\n    keep_alive: {refresh_ahead: true, idle_refresh: 720h}", 1), "", "", "", ""},
		{"keep_alive idle_refresh too often", strings.Replace(minimal, "    version: V2", "    version: V2\n    keep_alive: {idle_refresh: 10s}", 1), "error", "8:32", "auth.oauth.keep_alive.idle_refresh", "10s is too often: idle_refresh must be a duration from 1m to 8760h"},
		{"keep_alive idle_refresh over a year", strings.Replace(minimal, "    version: V2", "    version: V2\n    keep_alive: {idle_refresh: 9000h}", 1), "error", "8:32", "auth.oauth.keep_alive.idle_refresh", "more than a year"},
		{"keep_alive idle_refresh in days", strings.Replace(minimal, "    version: V2", "    version: V2\n    keep_alive: {idle_refresh: 60d}", 1), "error", "8:32", "auth.oauth.keep_alive.idle_refresh", "durations have no days; write hours, such as 1440h for 60 days"},
		{"keep_alive idle_refresh not a duration", strings.Replace(minimal, "    version: V2", "    version: V2\n    keep_alive: {idle_refresh: monthly}", 1), "error", "8:32", "auth.oauth.keep_alive.idle_refresh", "\"monthly\" is not a duration from 1m to 8760h"},
		{"keep_alive refresh_ahead not a boolean", strings.Replace(minimal, "    version: V2", "    version: V2\n    keep_alive: {refresh_ahead: sometimes}", 1), "error", "8:33", "auth.oauth.keep_alive.refresh_ahead", ""},
		{"keep_alive unknown key", strings.Replace(minimal, "    version: V2", "    version: V2\n    keep_alive: {idle: 24h}", 1), "error", "8:18", "auth.oauth.keep_alive.idle", "unknown key \"idle\"; allowed here: idle_refresh, refresh_ahead"},
		{"keep_alive on V1", strings.Replace(strings.Replace(strings.Replace(minimal, "version: V2", "version: V1\n    keep_alive: {refresh_ahead: true}", 1), "initiate_uri", "authorize_uri", 1), "", "", 1), "error", "8:5", "auth.oauth.keep_alive", "V1 tokens are not refreshed"},
		{"keep_alive idle_refresh on client credentials", strings.Replace(strings.Replace(strings.Replace(minimal, "scheme: oauth", "scheme: oauth_client", 1), "    initiate_uri: https://auth.acme.test/authorize\n", "", 1), "    version: V2", "    version: V2\n    keep_alive: {refresh_ahead: true, idle_refresh: 24h}", 1), "error", "8:53", "auth.oauth.keep_alive.idle_refresh", "client credentials have no refresh token to keep alive"},
		{"issuer must be https", strings.Replace(minimal, "    version: V2", "    version: V2\n    issuer: http://auth.acme.test", 1), "error", "8:13", "auth.oauth.issuer", "use https://"},
		{"docs url", minimal + "docs_url: x\n", "error", "10:11", "docs_url", "must be an absolute URL"},
		{"scopes need no spaces", strings.Replace(minimal, "    version: V2", "    version: V2\n    scopes: ['a b']", 1), "error", "8:14", "auth.oauth.scopes[0]", "must not contain spaces"},
		{"warn: pkce off", strings.Replace(minimal, "    version: V2", "    version: V2\n    pkce: false", 1), "warning", "8:11", "auth.oauth.pkce", "PKCE is off"},
		{"warn: secret in sent url", strings.Replace(strings.Replace(minimal, "/token", "/token?s=${ClientSecret}", 1), "    version: V2", "    version: V2\n    token_request: {params: query}", 1), "warning", "10:24", "auth.oauth.token_request_uri", "travels in the URL"},
		{"no warn: secret in url moved to body", strings.Replace(minimal, "/token", "/token?s=${ClientSecret}", 1), "", "", "", ""},
		{"no warn: secret in url moved to basic", strings.Replace(strings.Replace(minimal, "/token", "/token?s=${ClientSecret}", 1), "    version: V2", "    version: V2\n    token_request: {params: query, client_auth: basic}", 1), "", "", "", ""},
		{"second document", minimal + "---\nname: b\n", "error", "10:1", "", "a second YAML document"},

		// request.retry, request.rate_limit, request.pagination
		{"max_wait not a duration", minimal + "request:\n  retry: {max_wait: soon}\n", "error", "11:21", "request.retry.max_wait", `"soon" is not a positive duration`},
		{"max_attempts below 1", minimal + "request:\n  retry: {max_attempts: 0}\n", "error", "11:25", "request.retry.max_attempts", "must be >= 1"},
		{"idempotency header name", minimal + "request:\n  retry: {idempotency_header: 'Idem Token'}\n", "error", "11:31", "request.retry.idempotency_header", "must be an HTTP header name"},
		{"reset without reset_header", minimal + "request:\n  rate_limit: {reset: unix}\n", "error", "11:23", "request.rate_limit.reset", "there is no reset_header"},
		{"limit without per", minimal + "request:\n  rate_limit: {limit: 100}\n", "error", "11:23", "request.rate_limit.limit", "say how long the window is with per"},
		{"per alone", minimal + "request:\n  rate_limit: {per: 10s}\n", "error", "11:21", "request.rate_limit.per", "add one of them"},
		{"per not a duration", minimal + "request:\n  rate_limit: {per: ten, limit: 5}\n", "error", "11:21", "request.rate_limit.per", `"ten" is not a positive duration`},
		{"reset enum", minimal + "request:\n  rate_limit: {reset_header: X-Reset, reset: epoch}\n", "error", "11:46", "request.rate_limit.reset", `must be one of "unix", "seconds"`},
		{"pagination needs style", minimal + "request:\n  pagination: {size: 10}\n", "error", "11:3", "request.pagination.style", `missing required key "style"`},
		{"pagination style none at top", minimal + "request:\n  pagination: {style: none}\n", "error", "11:23", "request.pagination.style", "style none is for actions"},
		{"cursor without cursor_path", minimal + "request:\n  pagination: {style: cursor, cursor_param: c}\n", "error", "11:3", "request.pagination", "style cursor needs cursor_path"},
		{"cursor without cursor_param", minimal + "request:\n  pagination: {style: cursor, cursor_path: meta.next}\n", "error", "11:3", "request.pagination", "style cursor needs cursor_param"},
		{"offset without offset_param", minimal + "request:\n  pagination: {style: offset}\n", "error", "11:3", "request.pagination", "style offset needs offset_param"},
		{"key of another style", minimal + "request:\n  pagination: {style: link, page_param: p}\n", "error", "11:29", "request.pagination.page_param", "page_param applies to style page only, and this pagination's style is link"},
		{"size without size_param", minimal + "request:\n  pagination: {style: page, size: 50}\n", "error", "11:35", "request.pagination.size", "size needs size_param"},
		{"items path", minimal + "request:\n  pagination: {style: link, items: 'a..b'}\n", "error", "11:36", "request.pagination.items", "has an empty name between dots"},
		{"pagination unknown key", minimal + "request:\n  pagination: {style: page, per_page: 5}\n", "error", "11:29", "request.pagination.per_page", "allowed here:"},
		{"link pagination with size", minimal + "request:\n  pagination: {style: link, size_param: per_page, size: 100}\n", "", "", "", ""},

		// actions
		{"action name", withActions + "  ListThings:\n    path: /x\n", "error", "13:3", "actions.ListThings", "must be lowercase letters, digits and '_', starting with a letter, at most 64 characters, such as list_projects"},
		{"action unknown key", withActions + "  a:\n    path: /x\n    methd: POST\n", "error", "15:5", "actions.a.methd", `did you mean "method"?`},
		{"action needs path", withActions + "  a:\n    method: GET\n", "error", "13:3", "actions.a.path", `missing required key "path"`},
		{"action method enum", withActions + "  a:\n    path: /x\n    method: get\n", "error", "15:13", "actions.a.method", `must be one of "GET"`},
		{"path not starting with slash", withActions + "  a:\n    path: rest/x\n", "error", "14:11", "actions.a.path", "starts with /"},
		{"path with a host", withActions + "  a:\n    path: https://evil.test/x\n", "error", "14:11", "actions.a.path", "starts with /"},
		{"path with two slashes", withActions + "  a:\n    path: //evil.test/x\n", "error", "14:11", "actions.a.path", "names another host"},
		{"path with fragment", withActions + "  a:\n    path: /x#top\n", "error", "14:11", "actions.a.path", "a fragment"},
		{"unknown placeholder in path", withActions + "  a:\n    path: /x/${idd}\n    input:\n      required: [id]\n      properties: {id: {type: integer}}\n", "error", "14:14", "actions.a.path", "unknown placeholder ${idd}; did you mean ${id}?"},
		{"BaseUrl in path", withActions + "  a:\n    path: /x/${BaseUrl}\n", "error", "14:14", "actions.a.path", "${BaseUrl} has no value in actions: an action's path is already relative to the base URL"},
		{"ClientSecret in query", withActions + "  a:\n    path: /x\n    query: {s: '${ClientSecret}'}\n", "error", "15:17", "actions.a.query.s", "${ClientSecret} has no value in actions"},
		{"optional input in path", withActions + "  a:\n    path: /x/${id}\n    input:\n      properties: {id: {type: integer}}\n", "error", "14:14", "actions.a.path", "input id is optional and a path cannot leave it out"},
		{"input with default in path", withActions + "  a:\n    path: /x/${v}\n    input:\n      properties: {v: {type: string, default: v2}}\n", "", "", "", ""},
		{"field in path", withActions + "  a:\n    path: /companies/${CompanyId}/x\n", "", "", "", ""},
		{"input named like a field", withActions + "  a:\n    path: /x\n    query: {c: '${companyId}'}\n    input:\n      properties: {companyId: {type: integer}}\n", "error", "17:20", "actions.a.input.properties.companyId", "taken by the field CompanyId"},
		{"input named like a builtin", withActions + "  a:\n    path: /x\n    input:\n      properties:\n        state: {}\n", "error", "17:9", "actions.a.input.properties.state", "taken by the builtin placeholder ${State}"},
		{"inputs differing in case", withActions + "  a:\n    path: /x/${id}/${ID}\n    input:\n      required: [id, ID]\n      properties: {id: {}, ID: {}}\n", "error", "17:28", "actions.a.input.properties.ID", "differs from input \"id\" only in letter case"},
		{"input name pattern", withActions + "  a:\n    path: /x\n    input:\n      properties:\n        'project id': {}\n", "error", "17:9", "actions.a.input.properties.project id", "must be letters, digits and '_'"},
		{"input type must be object", withActions + "  a:\n    path: /x\n    input: {type: array}\n", "error", "15:19", "actions.a.input.type", `must be "object"`},
		{"invalid input schema", withActions + "  a:\n    path: /x\n    query: {q: '${q}'}\n    input:\n      properties:\n        q: {type: strng}\n", "error", "18:19", "actions.a.input.properties.q.type", "not a valid JSON Schema: must be one of \"array\""},
		{"invalid input regex", withActions + "  a:\n    path: /x\n    query: {q: '${q}'}\n    input:\n      properties:\n        q: {pattern: '('}\n", "error", "18:22", "actions.a.input.properties.q.pattern", "not a valid JSON Schema"},
		{"input schema reaching out", withActions + "  a:\n    path: /x\n    query: {q: '${q}'}\n    input:\n      properties:\n        q: {$ref: 'file:///etc/passwd'}\n", "error", "16:5", "actions.a.input", "an input schema must be self-contained"},
		{"required input not declared", withActions + "  a:\n    path: /x\n    input:\n      required: [nme]\n", "error", "16:18", "actions.a.input.required[0]", `"nme" is required but is not among input.properties`},
		{"GET with body", withActions + "  a:\n    path: /x\n    body: {a: 1}\n", "error", "15:5", "actions.a.body", "a GET request carries no body"},
		{"unknown placeholder in body", withActions + "  a:\n    method: POST\n    path: /x\n    body: {a: {b: 'x ${nam}'}}\n    input:\n      properties: {name: {}}\n", "error", "16:22", "actions.a.body.a.b", "unknown placeholder ${nam}; did you mean ${name}?"},
		{"pagination default without request.pagination", withActions + "  a:\n    path: /x\n    pagination: default\n", "error", "15:17", "actions.a.pagination", "request.pagination, which this definition does not declare"},
		{"pagination word", withActions + "  a:\n    path: /x\n    pagination: always\n", "error", "15:17", "actions.a.pagination", `must be one of "default", "none"`},
		{"action pagination without style", withActions + "  a:\n    path: /x\n    pagination: {items: data}\n", "error", "15:5", "actions.a.pagination", "pagination needs a style"},
		{"style none takes only items", withActions + "  a:\n    path: /x\n    pagination: {style: none, items: files, size: 5}\n", "error", "15:45", "actions.a.pagination.size", "size applies to styles page, link, cursor, offset, next_url and last_item only, and this pagination's style is none"},
		{"warn: unused input", withActions + "  a:\n    path: /x\n    input:\n      properties:\n        q: {}\n", "warning", "17:9", "actions.a.input.properties.q", "input q is used neither in the path, the query nor the body"},
		{"warn: secret in action url", minimal + "fields:\n  Key: {secret: true}\nactions:\n  a:\n    path: /x\n    query: {k: '${Key}'}\n", "warning", "15:5", "actions.a.query", "${Key} is a secret field and travels in the URL"},
		{"secret in action body is fine", minimal + "fields:\n  Key: {secret: true}\nactions:\n  a:\n    method: POST\n    path: /x\n    body: {k: '${Key}'}\n", "", "", "", ""},
		// webhooks (withWebhooks ends in "webhooks:" at line 12)
		{"webhooks without verification", withWebhooks + "  delivery_id: {path: id}\n", "error", "12:1", "webhooks", "needs a way to verify deliveries"},
		{"webhooks with both verifications", withWebhooks + "  shared_secret: {header: Authorization}\n  signature: {header: X-Sig, algorithm: hmac-sha256, encoding: hex}\n", "error", "13:3", "webhooks.shared_secret", "not both"},
		{"signature needs algorithm", withWebhooks + "  signature: {header: X-Sig, encoding: hex}\n", "error", "13:3", "webhooks.signature.algorithm", `missing required key "algorithm"`},
		{"signature algorithm enum", withWebhooks + "  signature: {header: X-Sig, algorithm: sha256, encoding: hex}\n", "error", "13:41", "webhooks.signature.algorithm", `must be one of "hmac-sha256", "hmac-sha1"`},
		{"signature encoding enum", withWebhooks + "  signature: {header: X-Sig, algorithm: hmac-sha256, encoding: base32}\n", "error", "13:64", "webhooks.signature.encoding", `must be one of "hex", "base64"`},
		{"signature header name", withWebhooks + "  signature: {header: 'X Sig', algorithm: hmac-sha256, encoding: hex}\n", "error", "13:23", "webhooks.signature.header", "must be an HTTP header name"},
		{"signed unknown placeholder", withWebhooks + "  signature: {header: X-Sig, algorithm: hmac-sha256, encoding: hex, signed: '${ts}.${body}'}\n", "error", "13:77", "webhooks.signature.signed", "unknown placeholder ${ts}; signed knows ${body}"},
		{"signed without body", withWebhooks + "  signature: {header: X-Sig, algorithm: hmac-sha256, encoding: hex, signed: 'v0:${timestamp}', timestamp_header: X-Ts, tolerance: 5m}\n", "error", "13:77", "webhooks.signature.signed", "does not include ${body}"},
		{"signed timestamp needs header", withWebhooks + "  signature: {header: X-Sig, algorithm: hmac-sha256, encoding: hex, signed: '${timestamp}.${body}'}\n", "error", "13:77", "webhooks.signature.signed", "add timestamp_header"},
		{"tolerance not a duration", withWebhooks + "  signature: {header: X-Sig, algorithm: hmac-sha256, encoding: hex, timestamp_header: X-Ts, tolerance: soon}\n", "error", "13:104", "webhooks.signature.tolerance", `"soon" is not a positive duration`},
		{"tolerance without timestamp header", withWebhooks + "  signature: {header: X-Sig, algorithm: hmac-sha256, encoding: hex, tolerance: 5m}\n", "error", "13:80", "webhooks.signature.tolerance", "but there is neither"},
		{"timestamp header unused", withWebhooks + "  signature: {header: X-Sig, algorithm: hmac-sha256, encoding: hex, timestamp_header: X-Ts}\n", "error", "13:87", "webhooks.signature.timestamp_header", "neither is given"},
		{"warn: timestamp without tolerance", withWebhooks + "  signature: {header: X-Sig, algorithm: hmac-sha256, encoding: hex, signed: 'v0:${timestamp}:${body}', timestamp_header: X-Ts}\n", "warning", "13:122", "webhooks.signature.timestamp_header", "add tolerance"},
		{"timestamp_key needs signature_key", withWebhooks + "  signature: {header: Stripe-Signature, algorithm: hmac-sha256, encoding: hex, timestamp_key: t, signed: '${timestamp}.${body}', tolerance: 5m}\n", "error", "13:95", "webhooks.signature.timestamp_key", `add signature_key`},
		{"timestamp_key and timestamp_header", withWebhooks + "  signature: {header: Stripe-Signature, algorithm: hmac-sha256, encoding: hex, signature_key: v1, timestamp_key: t, timestamp_header: X-Ts, signed: '${timestamp}.${body}', tolerance: 5m}\n", "error", "13:114", "webhooks.signature.timestamp_key", `not both`},
		{"timestamp_key equals signature_key", withWebhooks + "  signature: {header: Stripe-Signature, algorithm: hmac-sha256, encoding: hex, signature_key: v1, timestamp_key: v1, signed: '${timestamp}.${body}', tolerance: 5m}\n", "error", "13:114", "webhooks.signature.timestamp_key", `are both "v1"`},
		{"signature_key with prefix", withWebhooks + "  signature: {header: Stripe-Signature, algorithm: hmac-sha256, encoding: hex, signature_key: v1, prefix: v1=}\n", "error", "13:107", "webhooks.signature.prefix", `prefix does not apply`},
		{"signature_key pattern", withWebhooks + "  signature: {header: Stripe-Signature, algorithm: hmac-sha256, encoding: hex, signature_key: 'v 1'}\n", "error", "13:95", "webhooks.signature.signature_key", `must be the key of a key=value pair`},
		{"timestamp_key unused", withWebhooks + "  signature: {header: Stripe-Signature, algorithm: hmac-sha256, encoding: hex, signature_key: v1, timestamp_key: t}\n", "error", "13:114", "webhooks.signature.timestamp_key", `neither is given`},
		{"warn: timestamp_key without tolerance", withWebhooks + "  signature: {header: Stripe-Signature, algorithm: hmac-sha256, encoding: hex, signature_key: v1, timestamp_key: t, signed: '${timestamp}.${body}'}\n", "warning", "13:114", "webhooks.signature.timestamp_key", `add tolerance`},
		{"warn: hmac-sha1", withWebhooks + "  signature: {header: X-Sig, algorithm: hmac-sha1, encoding: hex}\n", "warning", "13:41", "webhooks.signature.algorithm", "deprecated"},
		{"signature secret enum", withWebhooks + "  signature: {header: X-Sig, algorithm: hmac-sha256, encoding: hex, secret: api_key}\n", "error", "13:77", "webhooks.signature.secret", `must be one of "webhook_secret", "client_secret"`},
		{"shared secret needs header", withWebhooks + "  shared_secret: {prefix: 'Bearer '}\n", "error", "13:3", "webhooks.shared_secret.header", `missing required key "header"`},
		{"delivery id nowhere", withWebhooks + "  shared_secret: {header: Authorization}\n  delivery_id: {}\n", "error", "14:3", "webhooks.delivery_id", "say where the value is"},
		{"delivery id in two places", withWebhooks + "  shared_secret: {header: Authorization}\n  delivery_id: {header: X-Id, path: id}\n", "error", "14:37", "webhooks.delivery_id.path", "not both"},
		{"event type path", withWebhooks + "  shared_secret: {header: Authorization}\n  event_type: {path: 'event..type'}\n", "error", "14:22", "webhooks.event_type.path", "has an empty name between dots"},
		{"attribute unknown field", withWebhooks + "  shared_secret: {header: Authorization}\n  attribute: {path: company_id, field: CompanyID2}\n", "error", "14:40", "webhooks.attribute.field", `no field "CompanyID2"; did you mean "CompanyId"?`},
		{"attribute needs field", withWebhooks + "  shared_secret: {header: Authorization}\n  attribute: {path: company_id}\n", "error", "14:3", "webhooks.attribute.field", `missing required key "field"`},
		{"attribute secret field", minimal + "fields:\n  Key: {secret: true}\nwebhooks:\n  shared_secret: {header: Authorization}\n  attribute: {header: X-Key, field: Key}\n", "error", "14:37", "webhooks.attribute.field", "field Key is secret"},
		{"attribute pattern regexp", withWebhooks + "  shared_secret: {header: Authorization}\n  attribute: {header: X-Shop, field: CompanyId, pattern: '('}\n", "error", "14:58", "webhooks.attribute.pattern", "not a valid regular expression"},
		{"attribute pattern group", withWebhooks + "  shared_secret: {header: Authorization}\n  attribute: {header: X-Shop, field: CompanyId, pattern: '[a-z]+\\.shop'}\n", "error", "14:58", "webhooks.attribute.pattern", "the pattern has no group"},
		{"webhooks unknown key", withWebhooks + "  shared_secret: {header: Authorization}\n  delivery: {path: id}\n", "error", "14:3", "webhooks.delivery", `did you mean "delivery_id"?`},
		{"webhooks complete", withWebhooks + "  signature: {header: X-Sig, algorithm: hmac-sha256, encoding: base64, prefix: 'v1=', signed: 'v1:${timestamp}:${body}', timestamp_header: X-Ts, tolerance: 5m}\n  delivery_id: {header: X-Id}\n  event_type: {path: /event/type}\n  attribute: {path: company_id, field: companyid}\n", "", "", "", ""},

		{"alias bomb", "a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n", "error", "1:1", "", "too many nodes"},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			_, diags := parse(t, file("x.yaml", r.src))
			if r.severity == "" {
				for _, d := range diags {
					t.Errorf("unexpected: %s", d)
				}
				return
			}
			for _, d := range diags {
				if d.Severity == r.severity && d.Field == r.field && strings.Contains(d.Message, r.contains) {
					if got := fmt.Sprintf("%d:%d", d.Line, d.Column); got != r.pos {
						t.Errorf("position %s, want %s: %s", got, r.pos, d)
					}
					return
				}
			}
			t.Errorf("no %s at %s containing %q; got:\n%s", r.severity, r.field, r.contains, joinDiags(diags))
		})
	}
}

func joinDiags(ds []definitions.Diagnostic) string {
	var b strings.Builder
	for _, d := range ds {
		b.WriteString("  " + d.String() + "\n")
	}
	return b.String()
}
