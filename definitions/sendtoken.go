package definitions

// checkBodyToken refuses requests that cannot carry a token sent in a body
// field (send_token.in: body): a GET or DELETE action has no body, and a
// learn request is a GET. Said here, when the definition loads, rather than
// on the first call.
func (b *builder) checkBodyToken() {
	d := b.def
	var st SendToken
	switch {
	case d.Auth.OAuth != nil:
		st = d.Auth.OAuth.SendToken
	case d.Auth.Session != nil:
		st = d.Auth.Session.SendToken
	}
	if st.In != TokenInBody {
		return
	}
	field := ""
	if st.Name != "" {
		field = ", field " + st.Name
	}
	for _, a := range d.Actions {
		if MethodHasBody(a.Method) {
			continue
		}
		p := "/actions/" + escapePointer(a.Name) + "/method"
		if b.given(p) == nil {
			p = "/actions/" + escapePointer(a.Name)
		}
		b.errorf(p, "the token travels in the request body (send_token.in: body%s), and a %s request has none; use POST, PUT or PATCH, as the provider's API does", field, a.Method)
	}
	for _, f := range d.Learned() {
		if f.Learn.From == LearnRequest {
			b.errorf("/fields/"+escapePointer(f.Name)+"/learn/from", "a learn request is a GET, which has no body to carry the token (send_token.in: body); learn %s from the callback or the token response, or let the connection give it", f.Name)
		}
	}
}

// MethodHasBody reports whether requests of an HTTP method carry a body that
// a token can be put in (send_token.in: body).
func MethodHasBody(method string) bool {
	switch method {
	case "POST", "PUT", "PATCH":
		return true
	}
	return false
}
