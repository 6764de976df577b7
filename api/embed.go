// Package api holds gatehouse's OpenAPI document, the source of truth for the
// HTTP surface. The server serves these exact bytes at /openapi.yaml; the
// generated code in internal/httpapi and client is produced from the file.
package api

import _ "embed"

// OpenAPI is api/openapi.yaml as written.
//
//go:embed openapi.yaml
var OpenAPI []byte
