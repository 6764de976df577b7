// Tests server.mjs against a real gatehouse at GATEHOUSE_URL (whose admin
// has GATEHOUSE_ADMIN_PASSWORD and whose rotated keys sign at once):
// `make example-node-test` starts one. The example must answer every
// refusal with gatehouse's own challenge.
import assert from "node:assert/strict";
import http from "node:http";
import { after, before, test } from "node:test";
import { createApp } from "../server.mjs";

const gatehouse = process.env.GATEHOUSE_URL;
const adminPassword = process.env.GATEHOUSE_ADMIN_PASSWORD;
if (!gatehouse || !adminPassword) {
  throw new Error("GATEHOUSE_URL and GATEHOUSE_ADMIN_PASSWORD must name a running gatehouse (make example-node-test starts one)");
}

async function login(username, password, scope = "") {
  const resp = await fetch(gatehouse + "/token", {
    method: "POST",
    body: new URLSearchParams({ grant_type: "password", username, password, scope }),
  });
  const body = await resp.json();
  assert.equal(resp.status, 200, JSON.stringify(body));
  return body;
}

async function call(base, method, path, headers = []) {
  const h = new Headers();
  for (const [k, v] of headers) h.append(k, v);
  // fetch joins repeated headers; node:http sends them apart.
  if (headers.filter(([k]) => k === "authorization").length > 1) {
    return new Promise((resolve, reject) => {
      const req = http.request(base + path, { method, headers: headers.flat() }, (res) => {
        res.resume();
        res.on("end", () => resolve({ status: res.statusCode, challenge: res.headers["www-authenticate"] ?? null }));
      });
      req.on("error", reject);
      req.end();
    });
  }
  const resp = await fetch(base + path, { method, headers: h });
  return { status: resp.status, challenge: resp.headers.get("www-authenticate"), body: await resp.text() };
}

let app, server, admin, alice, carol;

before(async () => {
  admin = (await login("admin", adminPassword)).access_token;
  for (const [username, scopes] of [["alice", ["me"]], ["carol", ["me", "users:read"]], ["inspector", ["tokens:introspect"]]]) {
    const resp = await fetch(gatehouse + "/users", {
      method: "POST",
      headers: { authorization: "Bearer " + admin, "content-type": "application/json" },
      body: JSON.stringify({ username, password: `${username}-password-1`, scopes }),
    });
    assert.equal(resp.status, 201, await resp.text());
  }
  const inspector = (await login("inspector", "inspector-password-1", "tokens:introspect")).access_token;
  server = http.createServer(createApp({ issuer: gatehouse, introspectToken: inspector, jwksCooldownMs: 0 }));
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  app = `http://127.0.0.1:${server.address().port}`;
  alice = await login("alice", "alice-password-1", "me");
  carol = await login("carol", "carol-password-1", "me users:read");
});

after(() => server?.close());

test("a valid token reaches the route", async () => {
  const r = await call(app, "GET", "/me", [["authorization", "Bearer " + alice.access_token]]);
  assert.equal(r.status, 200);
  assert.equal(JSON.parse(r.body).username, "alice");
  assert.equal((await call(app, "GET", "/reports/users", [["authorization", "Bearer " + carol.access_token]])).status, 200);
});

test("rfc6750 3 refusals carry gatehouse's challenges", async () => {
  const token = alice.access_token;
  for (const [name, path, gatehousePath, headers, status] of [
    ["no token", "/me", "/users/me", [], 401],
    ["empty token", "/me", "/users/me", [["authorization", "Bearer "]], 401],
    ["another scheme", "/me", "/users/me", [["authorization", "Basic YTpi"]], 401],
    ["token only in the query", "/me?access_token=" + token, "/users/me?access_token=" + token, [], 401],
    ["token in the query and the header", "/me?access_token=" + token, "/users/me?access_token=" + token, [["authorization", "Bearer " + token]], 400],
    ["two headers", "/me", "/users/me", [["authorization", "Bearer " + token], ["authorization", "Bearer " + token]], 400],
    ["missing scope", "/reports/users", "/users", [["authorization", "Bearer " + token]], 403],
  ]) {
    const got = await call(app, "GET", path, headers);
    const want = await call(gatehouse, "GET", gatehousePath, headers);
    assert.equal(want.status, status, `${name}: gatehouse answered ${want.status}`);
    assert.equal(got.status, status, `${name}: the example answered ${got.status}`);
    assert.equal(got.challenge, want.challenge, name);
  }
  const tampered = token.slice(0, -4) + "AAAA";
  const r = await call(app, "GET", "/me", [["authorization", "Bearer " + tampered]]);
  assert.equal(r.status, 401);
  assert.match(r.challenge, /^Bearer realm="gatehouse", error="invalid_token"/);
  // A refresh token is not an access token.
  assert.equal((await call(app, "GET", "/me", [["authorization", "Bearer " + alice.refresh_token]])).status, 401);
});

test("a token signed by a rotated key is accepted", async () => {
  const resp = await fetch(gatehouse + "/keys/rotate", { method: "POST", headers: { authorization: "Bearer " + admin } });
  assert.ok(resp.ok, `rotate: ${resp.status}`);
  const fresh = (await login("alice", "alice-password-1", "me")).access_token;
  const kid = (t) => JSON.parse(Buffer.from(t.split(".")[0], "base64url")).kid;
  assert.notEqual(kid(fresh), kid(alice.access_token), "the rotation did not change the signing key");
  for (const t of [fresh, alice.access_token]) {
    assert.equal((await call(app, "GET", "/me", [["authorization", "Bearer " + t]])).status, 200, `token of key ${kid(t)}`);
  }
});

test("rfc7662 a revoked token is refused where the route introspects", async () => {
  const resp = await fetch(gatehouse + "/revoke", { method: "POST", body: new URLSearchParams({ token: alice.refresh_token }) });
  assert.equal(resp.status, 200);
  const r = await call(app, "POST", "/account/delete", [["authorization", "Bearer " + alice.access_token]]);
  assert.equal(r.status, 401);
  assert.match(r.challenge, /error_description="the access token was revoked"/);
  // Verified locally, it stays valid until it expires.
  assert.equal((await call(app, "GET", "/me", [["authorization", "Bearer " + alice.access_token]])).status, 200);
  assert.equal((await call(app, "POST", "/account/delete", [["authorization", "Bearer " + carol.access_token]])).status, 200);
});
