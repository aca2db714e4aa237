package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
)

// --dry-run on call and request prints the request the command would send,
// as the bottom of the transport chain sees it (the definition's headers,
// the credentials, as ***), and sends nothing to the API. The token is
// obtained as for a real call, since the request carries it.

// dryRunTransport answers every request with 204 after printing it.
type dryRunTransport struct {
	out     io.Writer
	verbose *verboseTransport // its redaction: the connection's secrets, learnt credentials
	sent    int
}

func (d *dryRunTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	d.sent++
	for name, vals := range req.Header {
		for _, v := range vals {
			if d.verbose.isCredential(name) {
				d.verbose.addSecret(v)
				if _, cred, ok := strings.Cut(v, " "); ok {
					d.verbose.addSecret(cred)
				}
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s\n", req.Method, d.verbose.redactURL(req.URL))
	names := make([]string, 0, len(req.Header))
	for k := range req.Header {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		for _, v := range req.Header[k] {
			if d.verbose.isCredential(k) {
				v = "***"
			}
			fmt.Fprintf(&b, "%s: %s\n", k, v)
		}
	}
	if req.Body != nil {
		body, err := io.ReadAll(io.LimitReader(req.Body, 64<<20))
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		if len(body) > 0 {
			var pretty bytes.Buffer
			if json.Indent(&pretty, body, "", "  ") == nil {
				body = pretty.Bytes()
			}
			fmt.Fprintf(&b, "\n%s\n", body)
		}
	}
	fmt.Fprint(d.out, safeText(d.verbose.redact(b.String())))
	return &http.Response{
		StatusCode: http.StatusNoContent, Status: "204 No Content (dry run)",
		Header: http.Header{}, Body: http.NoBody, Request: req,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
	}, nil
}
