package definitions

import (
	"fmt"

	"github.com/connector-engine/connector/templates"
)

// SchemeNTLM authenticates with NTLM (MS-NLMP over HTTP, RFC 4559's
// WWW-Authenticate: NTLM or Negotiate): on-premises Microsoft APIs such as
// Dynamics 365 Business Central and NAV OData, SharePoint Server and SQL
// Server Reporting Services.
const SchemeNTLM Scheme = "ntlm"

// NTLM is the ntlm scheme's credentials (auth.ntlm): text templates of the
// connection's fields, with the placeholders of API requests. The password
// never travels: the client proves it knows it with an NTLMv2 response to
// the server's challenge.
type NTLM struct {
	Username *templates.Template // required: the account name (user, or user@domain)
	Password *templates.Template // required: a secret field
	Domain   *templates.Template // the account's domain (NetBIOS name); nil for none
}

type rawNTLM struct {
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	Domain   string `yaml:"domain"`
}

func (b *builder) buildNTLM(rn *rawNTLM) {
	const p = "/auth/ntlm"
	n := &NTLM{}
	b.def.Auth.NTLM = n
	if rn.Username == "" {
		b.errorf(p, "missing username: NTLM signs in as an account; write username: ${Username} with a field of that name")
	} else {
		n.Username = b.compile(p+"/username", rn.Username, templates.Text, scopeRequests)
	}
	if rn.Password == "" {
		b.errorf(p, "missing password: NTLM proves the account's password; write password: ${Password} with a secret field")
	} else if n.Password = b.compile(p+"/password", rn.Password, templates.Text, scopeRequests); n.Password != nil {
		if len(n.Password.Placeholders()) == 0 {
			// A definition is shared by every tenant and kept in version control.
			b.errorf(p+"/password", "the password is written in the definition, which every connection shares; write password: ${Password} and give it per connection in a secret field")
		}
		for _, ph := range n.Password.Placeholders() {
			if ph.Var >= NumBuiltinVars && b.def.vars.Flags(ph.Var)&templates.Secret == 0 {
				b.warnAt(warnSecretNotSecretField, p+"/password", ph.Offset,
					fmt.Sprintf("${%s} holds the password but is not a secret field, so it would be shown in logs and output; mark the field secret: true", ph.Name))
			}
		}
	}
	if rn.Domain != "" {
		n.Domain = b.compile(p+"/domain", rn.Domain, templates.Text, scopeRequests)
	}
}

func (n *NTLM) templates() []*templates.Template {
	var out []*templates.Template
	for _, t := range []*templates.Template{n.Username, n.Password, n.Domain} {
		if t != nil {
			out = append(out, t)
		}
	}
	return out
}
