// Package httpapi is gatehouse's HTTP surface. It wires the chi router and
// strict-server stubs generated from api/openapi.yaml to the handlers,
// validates every request against that document (which calls the bearer
// validator with the scopes each operation lists), and turns every error
// into one of three wire formats: RFC 6749 §5.2 on /token, RFC 6750
// challenges on bearer failures, RFC 9457 problem details elsewhere.
package httpapi
