// Package definitions owns connection definitions: the YAML format in which
// an admin describes how to reach a SaaS API (hosts, environments, the fields
// a connection needs, the OAuth flow and its URIs), loading it with precise
// diagnostics, and the validated, compiled Definition the engine runs from:
// its templates compiled, its retry, rate-limit and pagination policy, and
// its actions (named API calls whose inputs are checked against a JSON Schema
// and rendered into escaped requests). It also ships the built-in (Procore)
// definitions.
//
// # Loading
//
// Definitions are always checked as a [Set], so that one may extend another:
//
//   - [Builtin] is the set shipped in the binary (definitions/builtin).
//   - [Load] reads files and directories on top of Builtin, as the CLI's
//     --definitions does.
//   - [Parse] checks [File] values (a path for messages and the bytes) on top
//     of any base set: the entry point for a platform that keeps definitions
//     in a database, an upload or an API request.
//
// Then [Set.Lookup] gives a [Definition] by name. A Definition is immutable
// and safe to share between goroutines and connections.
//
// # Findings
//
// An invalid set is an [*Error] carrying every [Diagnostic] at once, each
// pointing at file:line:column and at the field (a dotted path such as
// auth.oauth.token_request_uri), with what to do; warnings of a valid set are
// [Set.Warnings]. Each warning has a stable [Diagnostic.Code] ([WarningCodes]);
// those a definition acknowledges in ignore_warnings are [Set.Acknowledged]
// instead. [Diagnostic.DocAnchor] and [Diagnostic.DocLink] link a
// finding to the key's section of the format reference, definitions/README.md,
// which documents every key of the schema (schemas/definition.schema.json).
//
// # What a definition yields
//
// Besides its OAuth settings ([OAuth]), a definition compiles its templates
// (the ${Name} placeholders of package templates, escaped by where each
// stands), its API policy ([Retry], [RateLimit], [Pagination]) and its
// [Action] list: an action checks its input against its JSON Schema and
// renders the request (method, escaped path, query, JSON body). Package
// connector runs all of it; nothing here sends a request.
package definitions
