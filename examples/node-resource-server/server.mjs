// A Node.js resource server that accepts gatehouse access tokens: jose's
// createRemoteJWKSet fetches gatehouse's JWKS (again when a token names a
// key it has not seen, so key rotation needs nothing here) and jwtVerify
// checks the signature with an allow-list of algorithms, typ "at+jwt"
// (RFC 9068 §4), iss, aud and exp; each route names the scopes it needs.
// Refusals are RFC 6750 challenges with RFC 9457 problem details, as
// gatehouse answers them.
//
//   npm ci
//   GATEHOUSE_ISSUER=http://127.0.0.1:8080 PORT=8001 npm start
//
// Settings, from the environment: GATEHOUSE_ISSUER (required),
// GATEHOUSE_AUDIENCE (default "gatehouse"), GATEHOUSE_INTROSPECT_TOKEN (an
// access token with tokens:introspect: POST /account/delete then also asks
// gatehouse's /introspect whether the caller's token is still active,
// RFC 7662), PORT (default 8001).
import http from "node:http";
import { pathToFileURL } from "node:url";
import { createRemoteJWKSet, errors, jwtVerify } from "jose";

const REALM = "gatehouse";
// The asymmetric algorithms gatehouse signs with; never HS256 or none.
const ALGORITHMS = ["RS256", "ES256", "EdDSA"];

class Refused extends Error {
  constructor(status, description, code = "", scope = "") {
    super(description);
    Object.assign(this, { status, description, code, scope });
  }
}

// bearerToken reads the token by gatehouse's rule (package bearer,
// RFC 6750 §2.1 and §3.1).
function bearerToken(req, url) {
  const raw = req.headersDistinct?.authorization ?? (req.headers.authorization ? [req.headers.authorization] : []);
  const inQuery = url.searchParams.has("access_token");
  if (raw.length > 1) throw new Refused(400, "more than one Authorization header", "invalid_request");
  const [scheme, ...rest] = (raw[0] ?? "").split(" ");
  const token = rest.join(" ").trimStart();
  if (raw.length === 0 || scheme.toLowerCase() !== "bearer" || token === "") {
    throw new Refused(401, inQuery ? "access tokens are accepted only in the Authorization header" : "an access token is required");
  }
  if (inQuery) {
    throw new Refused(400, "the access token was sent both in the Authorization header and in the query", "invalid_request");
  }
  return token;
}

export function createApp({ issuer, audience = "gatehouse", introspectToken = "", jwksCooldownMs = 30_000 }) {
  issuer = issuer.replace(/\/$/, "");
  const jwks = createRemoteJWKSet(new URL(issuer + "/.well-known/jwks.json"), { cooldownDuration: jwksCooldownMs });

  async function authenticate(req, url, scopes) {
    const token = bearerToken(req, url);
    let payload;
    try {
      ({ payload } = await jwtVerify(token, jwks, { issuer, audience, algorithms: ALGORITHMS, typ: "at+jwt", clockTolerance: 30 }));
    } catch (e) {
      if (e instanceof errors.JWTExpired) throw new Refused(401, "the access token expired", "invalid_token");
      throw new Refused(401, "the access token is invalid", "invalid_token");
    }
    const granted = new Set(String(payload.scope ?? "").split(" "));
    if (!scopes.every((s) => granted.has(s))) {
      throw new Refused(403, "the access token lacks a required scope", "insufficient_scope", scopes.join(" "));
    }
    return { payload, token };
  }

  async function requireActive(token) {
    if (!introspectToken) return;
    const resp = await fetch(issuer + "/introspect", {
      method: "POST",
      headers: { authorization: "Bearer " + introspectToken, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token, token_type_hint: "access_token" }),
    });
    if (!resp.ok || !(await resp.json()).active) throw new Refused(401, "the access token was revoked", "invalid_token");
  }

  const routes = {
    "GET /me": async (req, url) => {
      const { payload } = await authenticate(req, url, ["me"]);
      return { sub: payload.sub, username: payload.preferred_username, scope: payload.scope };
    },
    "GET /reports/users": async (req, url) => {
      const { payload } = await authenticate(req, url, ["users:read"]);
      return { requested_by: payload.preferred_username };
    },
    "POST /account/delete": async (req, url) => {
      const { payload, token } = await authenticate(req, url, ["me"]);
      await requireActive(token);
      return { deleted: payload.sub };
    },
  };

  return async (req, res) => {
    const url = new URL(req.url, "http://localhost");
    const route = routes[`${req.method} ${url.pathname}`];
    try {
      if (!route) throw Object.assign(new Error("no such resource"), { status: 404 });
      const body = await route(req, url);
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(body));
    } catch (e) {
      const status = e.status ?? 500;
      const headers = { "content-type": "application/problem+json" };
      if (e instanceof Refused) {
        let challenge = `Bearer realm="${REALM}"`;
        if (e.code) challenge += `, error="${e.code}", error_description="${e.description}"`;
        if (e.scope) challenge += `, scope="${e.scope}"`;
        headers["www-authenticate"] = challenge;
      }
      const detail = status === 500 ? "the server could not handle the request" : e.message;
      res.writeHead(status, headers).end(JSON.stringify({ type: "about:blank", title: http.STATUS_CODES[status], status, detail }));
    }
  };
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const app = createApp({
    issuer: process.env.GATEHOUSE_ISSUER,
    audience: process.env.GATEHOUSE_AUDIENCE || "gatehouse",
    introspectToken: process.env.GATEHOUSE_INTROSPECT_TOKEN || "",
  });
  const port = Number(process.env.PORT || 8001);
  http.createServer(app).listen(port, "127.0.0.1", () => console.log(`listening on http://127.0.0.1:${port}`));
}
