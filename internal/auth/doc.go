// Package auth owns gatehouse's OAuth 2.0 logic: the token endpoint
// (RFC 6749 §3.2, password grant §4.3), the signing keys and JWT access
// tokens (RFC 9068), and the bearer-token validator (RFC 6750) that the
// router's OpenAPI request validation calls for every operation whose
// security requirement names the oauth2 scheme.
//
// Errors are values: *Error for the token endpoint (RFC 6749 §5.2) and
// *BearerError for protected resources (RFC 6750 §3). The HTTP layer turns
// them into responses.
package auth
