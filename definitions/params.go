package definitions

import (
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// buildParameters reads auth.oauth.parameters: standard parameters the
// engine adds by itself, renamed (client_id: client_key) or turned off
// (grant_type: false) for providers that read other names or refuse them.
func (b *builder) buildParameters(o *OAuth) {
	const p = "/auth/oauth/parameters"
	n := resolve(b.given(p))
	if n == nil || n.Kind != yaml.MappingNode {
		return
	}
	o.Parameters = map[string]string{}
	used := map[string]string{} // provider name -> standard name
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		ptr := p + "/" + escapePointer(k.Value)
		if !slices.Contains(StandardParameters, k.Value) || v.Kind != yaml.ScalarNode {
			continue // the schema reported it
		}
		name := v.Value
		if v.Tag == "!!bool" {
			if v.Value == "true" {
				continue // the schema reported it
			}
			name = ""
		}
		if name == "" {
			if why := cannotTurnOff(k.Value, o); why != "" {
				b.errorf(ptr, "%s", why)
				continue
			}
		} else if other, dup := used[name]; dup {
			b.errorf(ptr, "%s and %s would both travel as %q; give each its own name", other, k.Value, name)
			continue
		} else if slices.Contains(StandardParameters, name) && name != k.Value {
			if _, renamed := o.Parameters[name]; !renamed && !b.renamedLater(n, name) {
				b.errorf(ptr, "%q is the standard name of another parameter the engine adds; rename that one too, or choose another name", name)
				continue
			}
		}
		if name != "" {
			used[name] = k.Value
		}
		o.Parameters[k.Value] = name
	}
}

// checkRequestShape checks the keys that shape a code flow's requests.
func (b *builder) checkRequestShape(o *OAuth) {
	const p = "/auth/oauth"
	if o.GrantType == GrantDeviceCode { // RFC 8628: no redirect, so no callback; refresh tokens as usual
		for _, key := range []string{"callback_code", "authorize_query"} {
			if b.given(p+"/"+key) != nil {
				b.errorf(p+"/"+key, "the device grant has no authorization request or callback; remove %s", key)
			}
		}
		return
	}
	if o.GrantType != GrantAuthorizationCode {
		for _, key := range []string{"callback_code", "authorize_query", "token_request/refresh_client_auth"} {
			if b.given(p+"/"+key) != nil {
				b.errorf(p+"/"+key, "client credentials have no authorization request, callback or refresh; remove %s", key[strings.LastIndex(key, "/")+1:])
			}
		}
		return
	}
	if slices.Contains(callbackReserved, o.CallbackCode) && o.CallbackCode != "code" {
		b.errorf(p+"/callback_code", "%q is another parameter of the callback; name the one that carries the code", o.CallbackCode)
	} else if name, _ := o.Param("state"); name == o.CallbackCode {
		b.errorf(p+"/callback_code", "the code and the state cannot arrive under the same name %q", name)
	}
}

// renamedLater reports whether the parameters mapping n renames std.
func (b *builder) renamedLater(n *yaml.Node, std string) bool {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == std {
			return true
		}
	}
	return false
}

// cannotTurnOff says why a standard parameter must be sent, or "".
func cannotTurnOff(std string, o *OAuth) string {
	switch std {
	case "code", "refresh_token":
		return fmt.Sprintf("the %s is what its request exchanges; it can be renamed, not turned off", strings.ReplaceAll(std, "_", " "))
	case "code_challenge", "code_challenge_method", "code_verifier":
		return "PKCE is turned off as a whole, with pkce: false; its parameters can be renamed"
	case "state":
		if o.GrantType == GrantAuthorizationCode && !o.PKCE {
			return "without state only PKCE protects the callback from forgery (RFC 9700 2.1); turn pkce on, or rename state instead"
		}
	case "client_secret":
		if o.TokenRequest.ClientAuth == ClientAuthBody && !o.Public {
			return "the client would not authenticate: client_auth is body; use client_auth: basic to send the secret in the Authorization header instead"
		}
		if o.TokenRequest.RefreshClientAuth == ClientAuthBody && !o.Public {
			return "the refresh would not authenticate the client: refresh_client_auth is body; use refresh_client_auth: basic or both"
		}
	}
	return ""
}
