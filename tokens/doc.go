// Package tokens mints and verifies agentbroker's access tokens: one per
// agent session and purpose, opening exactly what that session needs and
// dying with it.
//
// Tokens are RFC 9068-style JWT access tokens (header typ "at+jwt", a kid),
// signed with Ed25519 (alg EdDSA, nothing else accepted) by a KeyRing kept in
// the store and published as a JWKS. A token has exactly one Audience (the
// MCP endpoint, the inference proxy, a session viewer or the admin API),
// scopes from a closed vocabulary (see Scope), and is bound to a project and
// a session.
//
// The pieces:
//
//   - New opens a Service on a KeyStore and a RevocationStore (both satisfied
//     by store/sqlite); the first start creates the first key.
//   - Service.Mint turns a Grant into a signed token.
//   - Service.Verify checks a token for one audience, returning Claims or a
//     sentinel error saying why not (ErrExpired, ErrRevoked, …). Revocation
//     is checked on every call, so Service.Revoke and Service.RevokeSession
//     take effect on the next request, in every process sharing the store.
//   - Claims.Require and RequireScope check what a verified token is for.
//   - Service.Authorize (a raw token) and Service.AuthorizeRequest (an
//     http.Request) decide, for a Policy (audience, scopes, session, where
//     the token may come from), and write nothing: the claims, or a Refusal
//     carrying its status, OAuth error code, Reason and description, which
//     can write itself as an RFC 6750 challenge. Every consumer of tokens
//     decides through it.
//   - Service.Middleware does all of it for an http.Handler, with RFC 6750
//     challenges (and RFC 9728 resource_metadata when asked).
//   - KeyRing.Rotate and KeyRing.Retire rotate keys; KeyRing.JWKSHandler
//     serves /.well-known/jwks.json.
//   - Inspect and Service.Check explain a token for the CLI.
//
// Nothing here logs or prints a token, a seed or a private key: errors carry
// only reasons, and the types that hold keys print as summaries.
package tokens
