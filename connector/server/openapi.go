package server

import (
	_ "embed"
	"net/http"

	"github.com/connector-engine/connector/connector/server/state"
)

// OpenAPI is the API's OpenAPI 3.1 document, checked in beside this file.
//
//go:embed openapi.json
var OpenAPI []byte

func serveOpenAPI(w http.ResponseWriter, _ *http.Request, _ state.Principal) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(OpenAPI)
}
