package server

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/connector-engine/connector/definitions"
)

const dnsTimeout = 5 * time.Second

// checkHost applies the operator's host allow-list to a URL an API caller
// supplied (an OAuth client's base_url or login_url): it is where the
// server will send credentials, so it must not reach inside the network
// unless the operator says so.
func (s *Server) checkHost(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return fmt.Errorf("%q must be an absolute URL such as https://api.example.com", raw)
	}
	return s.hostAllowed(strings.ToLower(u.Hostname()))
}

// hostAllowed: host is in the allow-list (exactly, or under a "*.suffix"
// entry) and, unless the operator allows private addresses, neither names
// nor resolves to a loopback, private, link-local or unspecified address.
func (s *Server) hostAllowed(host string) error {
	if !s.inAllowList(host) {
		return fmt.Errorf("host %s is not in the server's allow-list (connector serve --allow-hosts)", host)
	}
	if s.cfg.AllowPrivate {
		return nil
	}
	ips := []net.IP{net.ParseIP(host)}
	if ips[0] == nil {
		ctx, cancel := context.WithTimeout(context.Background(), dnsTimeout)
		defer cancel()
		addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
		if err != nil {
			return fmt.Errorf("host %s does not resolve: %v", host, err)
		}
		ips = ips[:0]
		for _, a := range addrs {
			ips = append(ips, a.IP)
		}
	}
	for _, ip := range ips {
		if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsUnspecified() || host == "localhost" {
			return fmt.Errorf("host %s is a loopback or private address, which the server refuses unless started with --allow-private", host)
		}
	}
	return nil
}

// fieldHost applies the same policy to a connection's field value that
// names a host: a url field (a self-hosted instance's address) or a
// hostname field. The tenant supplies it, and the engine sends the
// connection's credentials there, so it is the operator's allow-list that
// decides, as for an OAuth client's base_url. A host_label field only
// fills a label under a domain the definition fixes, and is not checked.
func (s *Server) fieldHost(f *definitions.Field, v string) error {
	switch f.Type {
	case "url":
		return s.checkHost(v)
	case "hostname":
		return s.hostAllowed(strings.ToLower(strings.TrimSuffix(definitions.HostASCII(v), ".")))
	}
	return nil
}

func (s *Server) inAllowList(host string) bool {
	for _, a := range s.cfg.AllowHosts {
		a = strings.ToLower(a)
		if a == host || (strings.HasPrefix(a, "*.") && strings.HasSuffix(host, a[1:])) {
			return true
		}
	}
	return false
}

// Keys whose values are never requested: links and prose.
var notFetched = map[string]bool{"docs_url": true, "description": true, "title": true, "help": true}

// definitionHosts reports, as error diagnostics at the value's line and
// column, every host an uploaded definition names that the server would
// refuse for an OAuth client's URLs (hostAllowed): literal hosts of
// http(s) URLs anywhere in the file (a leading ${Field}. label is checked
// as a "*.rest" allow-list entry would be), and URLs whose scheme and host
// come from a connection field, which no allow-list can check when the
// definition is uploaded. Hosts a definition inherits with extends come
// from the operator's definitions and are not reported.
func (s *Server) definitionHosts(file string, data []byte) []definitions.Diagnostic {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil {
		return nil // the definitions package reports the syntax
	}
	var out []definitions.Diagnostic
	report := func(n *yaml.Node, field, msg string) {
		out = append(out, definitions.Diagnostic{Severity: definitions.SeverityError, File: file, Line: n.Line, Column: n.Column, Field: field, Message: msg})
	}
	seen := 0
	var walk func(n *yaml.Node, field, key string)
	walk = func(n *yaml.Node, field, key string) {
		if seen++; seen > maxExpanded {
			return
		}
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, field, key)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i].Value
				f := k
				if field != "" {
					f = field + "." + k
				}
				walk(n.Content[i+1], f, k)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(c, fmt.Sprintf("%s[%d]", field, i), key)
			}
		case yaml.ScalarNode:
			if n.Tag != "!!str" || notFetched[key] {
				return
			}
			if msg := s.urlHostProblem(n.Value, key); msg != "" {
				report(n, field, msg)
			}
		}
	}
	walk(&doc, "", "")
	return out
}

// maxExpanded bounds the walk (aliases are not followed; this bounds size).
const maxExpanded = 100_000

// urlHostProblem says what is wrong with the host of v, a value under key,
// or "" when nothing is (or v is no URL).
func (s *Server) urlHostProblem(v, key string) string {
	v = strings.TrimSpace(v)
	lower := strings.ToLower(v)
	urlKey := strings.HasSuffix(key, "_url") || strings.HasSuffix(key, "_uri")
	if strings.HasPrefix(v, "${") && urlKey {
		name, _, _ := strings.Cut(v[2:], "}")
		if name == "BaseUrl" || name == "LoginUrl" {
			return "" // the environment's URL, checked where it is written
		}
		return fmt.Sprintf("the scheme and host of this URL come from the connection field %s, set per connection, which the server's host allow-list cannot check when the definition is uploaded; write the host literally (it must be in --allow-hosts)", name)
	}
	rest, ok := strings.CutPrefix(lower, "https://")
	if !ok {
		if rest, ok = strings.CutPrefix(lower, "http://"); !ok {
			return ""
		}
	}
	hostport := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		hostport = rest[:i]
	}
	if i := strings.LastIndex(hostport, "@"); i >= 0 {
		hostport = hostport[i+1:]
	}
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "" {
		return ""
	}
	if strings.Contains(host, "${") {
		// ${Field}.example.com: allowed under *.example.com.
		if strings.HasPrefix(host, "${") {
			if i := strings.Index(host, "}."); i > 0 && !strings.Contains(host[i+2:], "${") && s.inAllowList("*."+host[i+2:]) {
				return ""
			}
		}
		return fmt.Sprintf("the host %s is made from a connection field, so any host could be reached; only a leading label may be a field, under an allow-list entry *.domain (connector serve --allow-hosts)", host)
	}
	if err := s.hostAllowed(host); err != nil {
		return err.Error()
	}
	return ""
}
