// Package schemas owns the JSON Schemas that describe the engine's file
// formats, embedded so that the binary validates without reading the disk.
package schemas

import _ "embed"

// Definition is the JSON Schema (draft 2020-12) of a connection definition.
//
//go:embed definition.schema.json
var Definition []byte

// DefinitionURL is the schema's $id, the name it is compiled under.
const DefinitionURL = "https://connector-engine.dev/schemas/definition.schema.json"
