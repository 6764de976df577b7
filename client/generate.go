// Package client is a Go client for gatehouse, generated from
// api/openapi.yaml by oapi-codegen.
package client

//go:generate go tool oapi-codegen -config oapi-codegen.yaml ../api/openapi.yaml
