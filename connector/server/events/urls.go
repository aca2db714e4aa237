package events

import "net/url"

type urlError = url.Error

// redactURL is raw without its query: a platform may authenticate its
// receiver with a token there, and the URL appears in dead letters and logs.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(the event URL)"
	}
	if u.RawQuery != "" {
		u.RawQuery = "…"
	}
	return u.Redacted()
}
