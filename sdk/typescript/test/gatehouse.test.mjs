// Black-box tests of the SDK against a real gatehouse: GATEHOUSE_URL names
// the server and GATEHOUSE_ADMIN_PASSWORD the bootstrap admin's password
// (user "admin"). scripts/node-test-against-server.sh (make sdk-ts-test) starts one and sets both.
// Each test makes its own users and tokens, so they can run in any order
// and against a server that other tests use.
import assert from "node:assert/strict";
import { createHmac, randomBytes } from "node:crypto";
import { test } from "node:test";

import { OAuthError, TokenHolder, bearerAuth, createGatehouseClient } from "../dist/index.js";

const baseUrl = process.env.GATEHOUSE_URL;
const adminPassword = process.env.GATEHOUSE_ADMIN_PASSWORD;
if (!baseUrl || !adminPassword) {
  throw new Error(
    "GATEHOUSE_URL and GATEHOUSE_ADMIN_PASSWORD must name a running gatehouse and its admin password; " +
      "make sdk-ts-test (scripts/node-test-against-server.sh) starts one and sets them",
  );
}

// recorder is a fetch that notes every exchange (the retry of bearerAuth too).
function recorder() {
  const exchanges = [];
  return {
    exchanges,
    async fetch(request) {
      const body = request.body ? await request.clone().text() : undefined;
      const response = await fetch(request);
      exchanges.push({ method: request.method, path: new URL(request.url).pathname, headers: request.headers, body, response });
      return response;
    },
  };
}

function uniqueName(prefix) {
  return `${prefix}-${randomBytes(6).toString("hex")}`;
}

async function assertOAuthError(promise, { status, error }) {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof OAuthError, `want OAuthError, got ${err}`);
    assert.equal(err.status, status);
    assert.equal(err.error, error);
    assert.equal(typeof err.error_description, "string");
    return true;
  });
}

// adminClient is a client whose requests carry the admin's bearer token.
async function adminClient() {
  const gatehouse = createGatehouseClient({ baseUrl });
  const holder = new TokenHolder(await gatehouse.passwordGrant({ username: "admin", password: adminPassword }));
  gatehouse.use(bearerAuth(gatehouse, holder));
  return gatehouse;
}

// createUser makes a user holding only the scope "me" and returns its credentials.
async function createUser() {
  const admin = await adminClient();
  const user = { username: uniqueName("sdk"), password: randomBytes(12).toString("base64url") };
  const { data, error, response } = await admin.POST("/users", { body: { ...user, scopes: ["me"] } });
  assert.equal(response.status, 201, `POST /users: ${JSON.stringify(error)}`);
  assert.equal(data.username, user.username);
  return user;
}

// totp computes an RFC 6238 code (HMAC-SHA-1, 30 s, six digits; RFC 4226
// §5.3 truncation) of a base32 secret at unix time `at`: what the user's
// authenticator app shows.
function totp(secret, at = Date.now() / 1000) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of secret.replace(/=+$/, "")) bits += alphabet.indexOf(c).toString(2).padStart(5, "0");
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(at / 30)));
  const mac = createHmac("sha1", key).update(counter).digest();
  const offset = mac[mac.length - 1] & 0xf;
  return String((mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).padStart(6, "0");
}

async function getMe(gatehouse, accessToken) {
  return gatehouse.GET("/users/me", { headers: { Authorization: `Bearer ${accessToken}` } });
}

test("rfc6749 4.3.2 password grant logs the admin in with a form-encoded request", async () => {
  const rec = recorder();
  const gatehouse = createGatehouseClient({ baseUrl, fetch: rec.fetch });

  const token = await gatehouse.passwordGrant({ username: "admin", password: adminPassword });

  assert.equal(token.token_type, "Bearer");
  assert.equal(token.access_token.split(".").length, 3, "access token is a JWT");
  assert.ok(Number.isInteger(token.expires_in) && token.expires_in > 0, `expires_in ${token.expires_in}`);
  assert.equal(typeof token.refresh_token, "string");
  assert.ok(token.scope.split(" ").includes("users:write"), `scope ${token.scope}`);

  assert.equal(rec.exchanges.length, 1);
  const [{ method, path, headers, body, response }] = rec.exchanges;
  assert.equal(`${method} ${path}`, "POST /token");
  assert.equal(headers.get("Content-Type"), "application/x-www-form-urlencoded");
  assert.equal(headers.get("Authorization"), null, "a public client sends no Authorization");
  assert.deepEqual(Object.fromEntries(new URLSearchParams(body)), {
    grant_type: "password",
    username: "admin",
    password: adminPassword,
  });
  assert.equal(response.headers.get("Cache-Control"), "no-store");
});

test("POST /users creates a user through the typed client", async () => {
  const admin = await adminClient();
  const username = uniqueName("created");

  const { data, error, response } = await admin.POST("/users", {
    body: { username, password: "correct horse battery", scopes: ["me"] },
  });

  assert.equal(response.status, 201, JSON.stringify(error));
  assert.equal(error, undefined);
  assert.match(response.headers.get("Location"), new RegExp(`/users/${username}$`));
  assert.equal(data.username, username);
  assert.deepEqual(data.scopes, ["me"]);
  assert.equal(data.disabled, false);
  assert.equal(typeof data.id, "string");
  assert.ok(!Number.isNaN(Date.parse(data.created_at)), `created_at ${data.created_at}`);

  const again = await admin.POST("/users", { body: { username, password: "correct horse battery" } });
  assert.equal(again.response.status, 409);
  assert.equal(again.error.status, 409);
});

test("rfc6749 4.3 a user logs in with scope me and GET /users/me returns them", async () => {
  const user = await createUser();
  const gatehouse = createGatehouseClient({ baseUrl });

  const token = await gatehouse.passwordGrant({ ...user, scope: "me" });
  assert.equal(token.scope, "me");

  const { data, error, response } = await getMe(gatehouse, token.access_token);
  assert.equal(response.status, 200, JSON.stringify(error));
  assert.equal(data.username, user.username);
  assert.deepEqual(data.scopes, ["me"]);
});

test("rfc6749 6 the refresh grant rotates the refresh token and the old one is invalid_grant", async () => {
  const user = await createUser();
  const gatehouse = createGatehouseClient({ baseUrl });
  const first = await gatehouse.passwordGrant({ ...user, scope: ["me"] });

  const second = await gatehouse.refresh(first.refresh_token);

  assert.equal(typeof second.refresh_token, "string");
  assert.notEqual(second.refresh_token, first.refresh_token);
  assert.notEqual(second.access_token, first.access_token);
  assert.equal(second.scope, "me", "an omitted scope keeps the original one (rfc6749 6)");
  const me = await getMe(gatehouse, second.access_token);
  assert.equal(me.response.status, 200);
  assert.equal(me.data.username, user.username);

  await assertOAuthError(gatehouse.refresh(first.refresh_token), { status: 400, error: "invalid_grant" });
  // rfc9700 4.14.2: replaying a rotated refresh token revokes its whole family.
  await assertOAuthError(gatehouse.refresh(second.refresh_token), { status: 400, error: "invalid_grant" });
});

test("rfc7009 a revoked access token gets 401 with error=\"invalid_token\" (rfc6750 3.1)", async () => {
  const user = await createUser();
  const gatehouse = createGatehouseClient({ baseUrl });
  const first = await gatehouse.passwordGrant({ ...user, scope: "me" });
  const second = await gatehouse.refresh(first.refresh_token);
  assert.equal((await getMe(gatehouse, second.access_token)).response.status, 200);

  await gatehouse.revoke(second.access_token, "access_token");

  const { data, error, response } = await getMe(gatehouse, second.access_token);
  assert.equal(response.status, 401);
  assert.equal(data, undefined);
  const challenge = response.headers.get("WWW-Authenticate");
  assert.match(challenge, /^Bearer /);
  assert.ok(challenge.includes('error="invalid_token"'), `WWW-Authenticate: ${challenge}`);
  assert.equal(error.status, 401);
  // Revoking an access token leaves its refresh token working.
  const third = await gatehouse.refresh(second.refresh_token);
  assert.equal((await getMe(gatehouse, third.access_token)).response.status, 200);
});

test("rfc7009 2.2 revoking an unknown token succeeds", async () => {
  const gatehouse = createGatehouseClient({ baseUrl });
  assert.equal(await gatehouse.revoke("not-a-token", "refresh_token"), undefined);
});

test("rfc6749 5.2 a wrong password is invalid_grant", async () => {
  const user = await createUser();
  const gatehouse = createGatehouseClient({ baseUrl });

  await assertOAuthError(gatehouse.passwordGrant({ username: user.username, password: "wrong password" }), {
    status: 400,
    error: "invalid_grant",
  });
  await assertOAuthError(gatehouse.passwordGrant({ username: uniqueName("nobody"), password: "wrong password" }), {
    status: 400,
    error: "invalid_grant",
  });
});

test("rfc6749 5.2 a scope the user does not hold is invalid_scope", async () => {
  const user = await createUser();
  const gatehouse = createGatehouseClient({ baseUrl });

  await assertOAuthError(gatehouse.passwordGrant({ ...user, scope: "me users:write" }), {
    status: 400,
    error: "invalid_scope",
  });
});

test("bearerAuth sends the access token and refreshes once after a 401 invalid_token", async () => {
  const user = await createUser();
  const rec = recorder();
  const gatehouse = createGatehouseClient({ baseUrl, fetch: rec.fetch });
  const holder = new TokenHolder(await gatehouse.passwordGrant({ ...user, scope: "me" }));
  gatehouse.use(bearerAuth(gatehouse, holder));

  const before = { ...holder.tokens };
  const first = await gatehouse.GET("/users/me");
  assert.equal(first.response.status, 200);
  assert.equal(first.data.username, user.username);

  await gatehouse.revoke(before.accessToken, "access_token");
  rec.exchanges.length = 0;
  const second = await gatehouse.GET("/users/me");

  assert.equal(second.response.status, 200);
  assert.equal(second.data.username, user.username);
  assert.deepEqual(
    rec.exchanges.map((e) => `${e.method} ${e.path} ${e.response.status}`),
    ["GET /users/me 401", "POST /token 200", "GET /users/me 200"],
  );
  assert.equal(rec.exchanges[0].headers.get("Authorization"), `Bearer ${before.accessToken}`);
  assert.equal(rec.exchanges[1].headers.get("Authorization"), null, "no bearer token on /token");
  assert.equal(new URLSearchParams(rec.exchanges[1].body).get("grant_type"), "refresh_token");
  assert.equal(rec.exchanges[2].headers.get("Authorization"), `Bearer ${holder.tokens.accessToken}`);
  assert.notEqual(holder.tokens.accessToken, before.accessToken);
  assert.notEqual(holder.tokens.refreshToken, before.refreshToken);

  // A request that names its own credentials is sent as it is, and not retried.
  rec.exchanges.length = 0;
  const explicit = await gatehouse.GET("/users/me", { headers: { Authorization: "Bearer not-a-jwt" } });
  assert.equal(explicit.response.status, 401);
  assert.deepEqual(
    rec.exchanges.map((e) => `${e.method} ${e.path} ${e.response.status} ${e.headers.get("Authorization")}`),
    ["GET /users/me 401 Bearer not-a-jwt"],
  );
});

test("bearerAuth shares one refresh among concurrent requests", async () => {
  const user = await createUser();
  const rec = recorder();
  const gatehouse = createGatehouseClient({ baseUrl, fetch: rec.fetch });
  const holder = new TokenHolder(await gatehouse.passwordGrant({ ...user, scope: "me" }));
  gatehouse.use(bearerAuth(gatehouse, holder));
  await gatehouse.revoke(holder.tokens.accessToken, "access_token");
  rec.exchanges.length = 0;

  const results = await Promise.all([1, 2, 3].map(() => gatehouse.GET("/users/me")));

  assert.deepEqual(results.map((r) => r.response.status), [200, 200, 200]);
  assert.equal(rec.exchanges.filter((e) => e.path === "/token").length, 1, "one refresh grant");
});

test("bearerAuth refreshes an expired access token before sending the request", async () => {
  const user = await createUser();
  const rec = recorder();
  const gatehouse = createGatehouseClient({ baseUrl, fetch: rec.fetch });
  const holder = new TokenHolder(await gatehouse.passwordGrant({ ...user, scope: "me" }));
  gatehouse.use(bearerAuth(gatehouse, holder));
  const before = { ...holder.tokens };
  holder.tokens.expiresAt = Date.now() - 1;
  rec.exchanges.length = 0;

  const { data, response } = await gatehouse.GET("/users/me");

  assert.equal(response.status, 200);
  assert.equal(data.username, user.username);
  assert.deepEqual(
    rec.exchanges.map((e) => `${e.method} ${e.path} ${e.response.status}`),
    ["POST /token 200", "GET /users/me 200"],
  );
  assert.notEqual(holder.tokens.accessToken, before.accessToken);
  assert.ok(holder.tokens.expiresAt > Date.now());
});

test("bearerAuth returns the 401 and clears the tokens when the login was revoked", async () => {
  const user = await createUser();
  const gatehouse = createGatehouseClient({ baseUrl });
  const holder = new TokenHolder(await gatehouse.passwordGrant({ ...user, scope: "me" }));
  gatehouse.use(bearerAuth(gatehouse, holder));

  // rfc7009 2.1: revoking the refresh token ends the login, access tokens included.
  await gatehouse.revoke(holder.tokens.refreshToken, "refresh_token");
  const { error, response } = await gatehouse.GET("/users/me");

  assert.equal(response.status, 401);
  assert.ok(response.headers.get("WWW-Authenticate").includes('error="invalid_token"'));
  assert.equal(error.status, 401);
  assert.equal(holder.tokens, undefined);
});

test("rfc6749 2.3.1 a confidential client authenticates with HTTP Basic on /token and /revoke", async () => {
  const admin = await adminClient();
  const user = await createUser();
  // "~" is form-urlencoded as %7E inside the Basic credentials (rfc6749 2.3.1, Appendix B).
  const clientId = uniqueName("sdk~backend");
  const registered = await admin.POST("/clients", { body: { client_id: clientId, confidential: true, scopes: ["me"] } });
  assert.equal(registered.response.status, 201, JSON.stringify(registered.error));
  const clientSecret = registered.data.client_secret;
  assert.equal(typeof clientSecret, "string");

  const rec = recorder();
  const gatehouse = createGatehouseClient({ baseUrl, fetch: rec.fetch, clientId, clientSecret });
  const first = await gatehouse.passwordGrant({ ...user, scope: "me" });
  const second = await gatehouse.refresh(first.refresh_token);
  await gatehouse.revoke(second.refresh_token, "refresh_token");

  const basic = `Basic ${Buffer.from(`${clientId.replace("~", "%7E")}:${encodeURIComponent(clientSecret)}`).toString("base64")}`;
  for (const e of rec.exchanges) {
    assert.equal(e.headers.get("Authorization"), basic, `${e.method} ${e.path}`);
    assert.equal(new URLSearchParams(e.body).get("client_id"), null, "no client_id in the body with Basic");
    assert.equal(new URLSearchParams(e.body).get("client_secret"), null, "no client_secret in the body");
  }
  assert.deepEqual(
    rec.exchanges.map((e) => `${e.method} ${e.path} ${e.response.status}`),
    ["POST /token 200", "POST /token 200", "POST /revoke 200"],
  );
  await assertOAuthError(gatehouse.refresh(second.refresh_token), { status: 400, error: "invalid_grant" });

  const wrongSecret = createGatehouseClient({ baseUrl, clientId, clientSecret: `${clientSecret}x` });
  await assertOAuthError(wrongSecret.passwordGrant({ ...user, scope: "me" }), { status: 401, error: "invalid_client" });
  // A refresh token is bound to the client it was issued to (rfc6749 6).
  const third = await gatehouse.passwordGrant({ ...user, scope: "me" });
  const anonymous = createGatehouseClient({ baseUrl });
  await assertOAuthError(anonymous.refresh(third.refresh_token), { status: 400, error: "invalid_grant" });
});

test("rfc6749 3.2.1 a public client sends client_id in the form", async () => {
  const admin = await adminClient();
  const user = await createUser();
  const clientId = uniqueName("sdk-spa");
  const registered = await admin.POST("/clients", { body: { client_id: clientId, confidential: false } });
  assert.equal(registered.response.status, 201, JSON.stringify(registered.error));

  const rec = recorder();
  const gatehouse = createGatehouseClient({ baseUrl, fetch: rec.fetch });
  const token = await gatehouse.passwordGrant({ ...user, scope: "me", clientId });

  assert.equal(token.token_type, "Bearer");
  const [{ headers, body }] = rec.exchanges;
  assert.equal(headers.get("Authorization"), null);
  assert.equal(new URLSearchParams(body).get("client_id"), clientId);
});

// withUserAgent is a fetch sending every request, /token included, with the
// User-Agent ua, so that each login is recognisable in the session list.
function withUserAgent(ua) {
  return (request) => {
    request.headers.set("User-Agent", ua);
    return fetch(request);
  };
}

// sid is the session id an access token carries (its `sid` claim).
function sid(accessToken) {
  const claims = JSON.parse(Buffer.from(accessToken.split(".")[1], "base64url").toString());
  assert.equal(typeof claims.sid, "string", `claims ${JSON.stringify(claims)}`);
  return claims.sid;
}

// login logs user in as a client of its own with the User-Agent ua.
async function login(user, ua) {
  const gatehouse = createGatehouseClient({ baseUrl, fetch: withUserAgent(ua) });
  const token = await gatehouse.passwordGrant({ ...user, scope: "me" });
  return { gatehouse, token, sid: sid(token.access_token) };
}

function bearer(accessToken) {
  return { Authorization: `Bearer ${accessToken}` };
}

// assertRefused checks an RFC 6750 3.1 invalid_token refusal of GET /users/me.
async function assertRefused(gatehouse, accessToken) {
  const { error, response } = await getMe(gatehouse, accessToken);
  assert.equal(response.status, 401);
  assert.ok(response.headers.get("WWW-Authenticate").includes('error="invalid_token"'), response.headers.get("WWW-Authenticate"));
  assert.equal(error.status, 401);
}

function assertProblem404({ error, response }) {
  assert.equal(response.status, 404);
  assert.equal(response.headers.get("Content-Type"), "application/problem+json");
  assert.equal(error.status, 404);
}

test("GET /users/me/sessions lists each login, current marking the caller's", async () => {
  const user = await createUser();
  const laptop = await login(user, "sdk-test laptop");
  const phone = await login(user, "sdk-test phone");
  assert.notEqual(laptop.sid, phone.sid);

  const { data, error, response } = await laptop.gatehouse.GET("/users/me/sessions", { headers: bearer(laptop.token.access_token) });

  assert.equal(response.status, 200, JSON.stringify(error));
  const byId = new Map(data.sessions.map((s) => [s.id, s]));
  assert.equal(byId.size, 2, JSON.stringify(data));
  for (const [login, ua] of [[laptop, "sdk-test laptop"], [phone, "sdk-test phone"]]) {
    const s = byId.get(login.sid);
    assert.ok(s, `session ${login.sid} missing from ${JSON.stringify(data)}`);
    assert.equal(s.user_agent, ua);
    assert.equal(s.client_id, "public");
    assert.ok(Date.parse(s.created_at) <= Date.parse(s.last_used_at), JSON.stringify(s));
  }
  assert.deepEqual(data.sessions.filter((s) => s.current).map((s) => s.id), [laptop.sid]);
});

test("DELETE /users/me/sessions?keep_current=true logs out elsewhere, then without it everywhere", async () => {
  const user = await createUser();
  const phone = await login(user, "sdk-test phone");
  // The current session goes through bearerAuth, as an application would.
  const laptop = await login(user, "sdk-test laptop");
  const holder = new TokenHolder(laptop.token);
  laptop.gatehouse.use(bearerAuth(laptop.gatehouse, holder));

  const elsewhere = await laptop.gatehouse.DELETE("/users/me/sessions", { params: { query: { keep_current: true } } });

  assert.equal(elsewhere.response.status, 200, JSON.stringify(elsewhere.error));
  assert.deepEqual(elsewhere.data, { revoked: 1 });
  await assertOAuthError(phone.gatehouse.refresh(phone.token.refresh_token), { status: 400, error: "invalid_grant" });
  await assertRefused(phone.gatehouse, phone.token.access_token);
  const me = await laptop.gatehouse.GET("/users/me");
  assert.equal(me.response.status, 200);
  assert.equal(me.data.username, user.username);
  const left = await laptop.gatehouse.GET("/users/me/sessions");
  assert.deepEqual(left.data.sessions.map((s) => [s.id, s.current]), [[laptop.sid, true]]);

  const everywhere = await laptop.gatehouse.DELETE("/users/me/sessions");

  assert.equal(everywhere.response.status, 200, JSON.stringify(everywhere.error));
  assert.deepEqual(everywhere.data, { revoked: 1 });
  // bearerAuth's refresh after the 401 is invalid_grant: the login is over.
  const after = await laptop.gatehouse.GET("/users/me");
  assert.equal(after.response.status, 401);
  assert.ok(after.response.headers.get("WWW-Authenticate").includes('error="invalid_token"'));
  assert.equal(holder.tokens, undefined);
  await assertRefused(laptop.gatehouse, laptop.token.access_token);
});

test("DELETE /users/me/sessions/{session_id} ends one session, then is 404", async () => {
  const user = await createUser();
  const laptop = await login(user, "sdk-test laptop");
  const phone = await login(user, "sdk-test phone");
  const options = { params: { path: { session_id: phone.sid } }, headers: bearer(laptop.token.access_token) };

  const { response } = await laptop.gatehouse.DELETE("/users/me/sessions/{session_id}", options);

  assert.equal(response.status, 204);
  await assertRefused(phone.gatehouse, phone.token.access_token);
  await assertOAuthError(phone.gatehouse.refresh(phone.token.refresh_token), { status: 400, error: "invalid_grant" });
  assert.equal((await getMe(laptop.gatehouse, laptop.token.access_token)).response.status, 200);
  assertProblem404(await laptop.gatehouse.DELETE("/users/me/sessions/{session_id}", options));
});

test("an account manager lists and ends a user's sessions under /users/{username}/sessions", async () => {
  const admin = await adminClient();
  const user = await createUser();
  const laptop = await login(user, "sdk-test laptop");
  const phone = await login(user, "sdk-test phone");
  const path = { username: user.username };

  const listed = await admin.GET("/users/{username}/sessions", { params: { path } });

  assert.equal(listed.response.status, 200, JSON.stringify(listed.error));
  assert.deepEqual(listed.data.sessions.map((s) => s.id).sort(), [laptop.sid, phone.sid].sort());
  assert.ok(listed.data.sessions.every((s) => !s.current), "the admin's token is none of the user's sessions");

  const ended = await admin.DELETE("/users/{username}/sessions/{session_id}", { params: { path: { ...path, session_id: phone.sid } } });

  assert.equal(ended.response.status, 204, JSON.stringify(ended.error));
  await assertRefused(phone.gatehouse, phone.token.access_token);
  assert.equal((await getMe(laptop.gatehouse, laptop.token.access_token)).response.status, 200);
  const left = await admin.GET("/users/{username}/sessions", { params: { path } });
  assert.deepEqual(left.data.sessions.map((s) => s.id), [laptop.sid]);
  for (const session_id of ["no-such-session", phone.sid]) {
    assertProblem404(await admin.DELETE("/users/{username}/sessions/{session_id}", { params: { path: { ...path, session_id } } }));
  }
});

test("rfc6238 a user enrols TOTP, then logs in with the code in one request and in two steps", async () => {
  const user = await createUser();
  const gatehouse = createGatehouseClient({ baseUrl });
  const first = await gatehouse.passwordGrant(user);
  const auth = { headers: { Authorization: `Bearer ${first.access_token}` } };

  const started = await gatehouse.POST("/users/me/mfa/totp", auth);
  assert.equal(started.response.status, 201, JSON.stringify(started.error));
  assert.match(started.data.otpauth_uri, /^otpauth:\/\/totp\//);
  assert.match(started.data.qr_code, /^data:image\/png;base64,/);
  const secret = started.data.secret;
  const confirmed = await gatehouse.POST("/users/me/mfa/totp/confirm", { ...auth, body: { code: totp(secret) } });
  assert.equal(confirmed.response.status, 200, JSON.stringify(confirmed.error));
  const recovery = confirmed.data.recovery_codes;
  assert.equal(recovery.length, 10);

  // The password alone is not enough any more: mfa_required with an mfa_token.
  await assert.rejects(gatehouse.passwordGrant(user), (err) => {
    assert.ok(err instanceof OAuthError);
    assert.equal(err.status, 403);
    assert.equal(err.error, "mfa_required");
    assert.equal(typeof err.mfa_token, "string");
    return true;
  });

  // One request: the code of the next step (the current one confirmed the enrolment).
  const code = totp(secret, Date.now() / 1000 + 30);
  const one = await gatehouse.passwordGrant({ ...user, otp: code });
  assert.equal((await getMe(gatehouse, one.access_token)).data.username, user.username);
  // RFC 6238 §5.2: the same code does not work twice.
  await assertOAuthError(gatehouse.passwordGrant({ ...user, otp: code }), { status: 400, error: "invalid_grant" });

  // Two steps: the callback supplies the code when the server asks.
  let asked = 0;
  const two = await gatehouse.passwordGrant({
    ...user,
    onMfaRequired: async () => {
      asked++;
      return recovery[0];
    },
  });
  assert.equal(asked, 1);
  assert.equal((await getMe(gatehouse, two.access_token)).data.totp, "enabled");
  // A recovery code works once.
  await assertOAuthError(gatehouse.passwordGrant({ ...user, onMfaRequired: async () => recovery[0] }), { status: 400, error: "invalid_grant" });
});
