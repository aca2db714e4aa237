package connector

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/connector-engine/connector/definitions"
)

// A token sent in a body field (send_token.in: body): some APIs read it
// nowhere else, such as Zabbix 6.0's JSON-RPC "auth" member. The field is
// set, not added, so a replay after a 401 (whose body is the one already
// carrying the old token) carries the renewed token once.

// maxTokenBody caps the body a token is put in: it is read whole to be
// rewritten. Bigger bodies (uploads) do not carry credentials in them.
const maxTokenBody = maxReplayBody

// placeBodyToken sets field name of r's body to tok: a JSON object's
// member, or a form field. A request with an empty body gets a form body
// with the field alone. Other bodies, and methods without a body, are an
// error: the request would go out without its credentials.
func placeBodyToken(r *http.Request, name, tok string) error {
	if !definitions.MethodHasBody(r.Method) {
		return fmt.Errorf("the definition sends the token in the request body (send_token.in: body, field %s), and a %s request has none; use POST, PUT or PATCH", name, r.Method)
	}
	var data []byte
	if r.Body != nil && r.Body != http.NoBody {
		var err error
		data, err = io.ReadAll(io.LimitReader(r.Body, maxTokenBody+1))
		r.Body.Close()
		if err != nil {
			return fmt.Errorf("reading the request body to put the token in: %w", err)
		}
		if len(data) > maxTokenBody {
			return fmt.Errorf("the request body is over %d MiB, too big to put the token in (send_token.in: body)", maxTokenBody>>20)
		}
	}
	ct := r.Header.Get("Content-Type")
	media, _, _ := mime.ParseMediaType(ct)
	switch {
	case media == "application/json" || strings.HasSuffix(media, "+json"):
		var obj map[string]json.RawMessage
		if len(bytes.TrimSpace(data)) == 0 {
			obj = map[string]json.RawMessage{}
		} else if err := json.Unmarshal(data, &obj); err != nil || obj == nil {
			return fmt.Errorf("the token goes in field %s of the JSON body (send_token.in: body), and the body is not a JSON object", name)
		}
		v, _ := json.Marshal(tok)
		obj[name] = v
		data, _ = json.Marshal(obj) // RawMessage members are valid JSON: it cannot fail
	case media == "application/x-www-form-urlencoded" || ct == "" && len(bytes.TrimSpace(data)) == 0:
		form, err := url.ParseQuery(string(data))
		if err != nil {
			return fmt.Errorf("the token goes in field %s of the form body (send_token.in: body), and the body is not a valid form: %v", name, err)
		}
		form.Set(name, tok)
		data = []byte(form.Encode())
		if ct == "" {
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	default:
		return fmt.Errorf("the token goes in field %s of the body (send_token.in: body), which must be JSON or a form, not %s", name, strconv.Quote(ct))
	}
	r.Body = io.NopCloser(bytes.NewReader(data))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
	r.ContentLength = int64(len(data))
	return nil
}
