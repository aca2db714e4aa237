package definitions

// The device authorization grant (RFC 8628), grant_type: device_code: the
// engine asks device_authorization_uri for a device code and a user code,
// the user enters the user code at the provider's verification page on any
// device, and the engine polls token_request_uri until it is approved.
// There is no browser redirect, so the keys of the redirect flow make no
// sense here and are refused with a message saying why.

// scopeDevice is what the device authorization request and the polling
// token request may reference: the client and the scope, never a redirect
// URI or code, which this grant does not have.
var scopeDevice = scope{name: "the device grant's requests", noLearned: true, allowed: bits(VarClientID, VarClientSecret, VarScope, VarBaseURL, VarLoginURL, VarRandom)}

// checkDeviceGrant refuses what belongs to the redirect flow.
func (b *builder) checkDeviceGrant(version, initiate, authorize string, pkce *bool, forbid func(field, uri, why string)) {
	const p = "/auth/oauth"
	forbid("initiate_uri", initiate, "the device grant sends no one to an authorization page: the user opens the verification URI the device authorization response names and enters the code; remove initiate_uri")
	forbid("authorize_uri", authorize, "the device grant has no authorization page to send the user to (the verification URI comes in the device authorization response); remove authorize_uri")
	if version == V1 {
		b.errorf(p+"/version", "the device grant is an OAuth 2.0 grant (RFC 8628); set version: V2")
	}
	if pkce != nil && *pkce {
		b.errorf(p+"/pkce", "PKCE binds a code to the redirect that returns it; the device grant has neither (RFC 8628 has no PKCE), so remove pkce")
	}
}
