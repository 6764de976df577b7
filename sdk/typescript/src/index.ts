// Package @gatehouse/sdk: the typed openapi-fetch client for gatehouse, the
// RFC 6749 token calls (password grant §4.3 with a second factor, refresh
// §6, RFC 7009 revocation) and a bearer middleware (RFC 6750 §2.1) that keeps an access
// token fresh. Every type comes from src/schema.d.ts, generated from
// api/openapi.yaml by openapi-typescript; this file adds no wire types.
import createClient, { type Client, type Middleware } from "openapi-fetch";
import type { components, paths } from "./schema.js";

export type { components, operations, paths } from "./schema.js";

type Schemas = components["schemas"];
export type TokenRequest = Schemas["TokenRequest"];
export type TokenResponse = Schemas["TokenResponse"];
export type RevocationRequest = Schemas["RevocationRequest"];
export type OAuth2ErrorBody = Schemas["OAuth2Error"];
export type OAuthErrorCode = OAuth2ErrorBody["error"];
export type User = Schemas["User"];
/** One login in a session list (`GET /users/me/sessions`, `GET /users/{username}/sessions`). */
export type UserSession = Schemas["UserSession"];
export type SessionList = Schemas["SessionList"];
/** The answer of `DELETE /users/me/sessions` and `DELETE /users/{username}/sessions`. */
export type SessionsRevoked = Schemas["SessionsRevoked"];
export type Problem = Schemas["Problem"];

/** Space-separated scopes (RFC 6749 §3.3), or a list of them. */
export type Scope = string | readonly string[];

export interface GatehouseClientOptions {
  /** The server's base URL, e.g. `http://127.0.0.1:8080`. */
  baseUrl: string;
  /** A fetch to use instead of `globalThis.fetch`. */
  fetch?: (request: Request) => Promise<Response>;
  /**
   * The client (RFC 6749 §2.2) that `/token` and `/revoke` calls identify as.
   * Without `clientSecret` it is a public client and `client_id` goes in the
   * form (§3.2.1); with one, the client authenticates with HTTP Basic
   * (§2.3.1). Refresh tokens are bound to their client, so set these here
   * rather than on `passwordGrant` when the tokens will be refreshed.
   */
  clientId?: string;
  clientSecret?: string;
}

export interface PasswordGrantRequest {
  username: string;
  password: string;
  /**
   * The second factor's code (or a recovery code), sent in the same
   * request (`otp`), for a user with TOTP enrolled.
   */
  otp?: string;
  /**
   * Supplies the code when the server answers `mfa_required` (a user with
   * TOTP, and no `otp` given): the login then exchanges the answer's
   * `mfa_token` with it (Auth0's two-step shape). Without it, such a login
   * rejects with an `OAuthError` whose `error` is `mfa_required`.
   */
  onMfaRequired?: () => Promise<string>;
  /** Omitted: every scope the user holds and the client may have. */
  scope?: Scope;
  /** Overrides `GatehouseClientOptions.clientId` for this call. */
  clientId?: string;
  /** Overrides `GatehouseClientOptions.clientSecret` for this call. */
  clientSecret?: string;
}

/** RFC 7009 §2.1 `token_type_hint`. */
export type TokenTypeHint = "access_token" | "refresh_token";

/** The typed openapi-fetch client, plus the token endpoint calls. */
export interface GatehouseClient extends Client<paths> {
  /**
   * Resource owner password credentials grant (RFC 6749 §4.3.2), with the
   * second factor when the user has one (`otp` or `onMfaRequired`).
   */
  passwordGrant(request: PasswordGrantRequest): Promise<TokenResponse>;
  /**
   * The second step of a two-step login: the `mfa_token` of an
   * `mfa_required` answer exchanged with a code. The token works once.
   */
  mfaOtpGrant(mfaToken: string, otp: string, client?: { clientId?: string; clientSecret?: string }): Promise<TokenResponse>;
  /**
   * Refresh grant (RFC 6749 §6). gatehouse rotates refresh tokens: keep the
   * returned `refresh_token` and drop the one presented, which now fails.
   */
  refresh(refreshToken: string, scope?: Scope): Promise<TokenResponse>;
  /** Token revocation (RFC 7009 §2.1); resolves also for unknown tokens (§2.2). */
  revoke(token: string, hint?: TokenTypeHint): Promise<void>;
}

/** An error response of the token or revocation endpoint (RFC 6749 §5.2). */
export class OAuthError extends Error {
  readonly status: number;
  readonly error: OAuthErrorCode;
  readonly error_description?: string;
  readonly error_uri?: string;
  /** With `mfa_required`: the token of the second step (`mfaOtpGrant`). */
  readonly mfa_token?: string;

  constructor(status: number, body: OAuth2ErrorBody) {
    super(body.error_description ? `${body.error}: ${body.error_description}` : body.error);
    this.name = "OAuthError";
    this.status = status;
    this.error = body.error;
    this.error_description = body.error_description;
    this.error_uri = body.error_uri;
    this.mfa_token = body.mfa_token;
  }
}

/** The grant type of a two-step login's second step (Auth0's). */
export const MFA_OTP_GRANT = "http://auth0.com/oauth/grant-type/mfa-otp";

export function createGatehouseClient(options: GatehouseClientOptions): GatehouseClient {
  const { baseUrl, fetch, clientId, clientSecret } = options;
  // The token calls go through a client of their own, so a bearer
  // middleware registered on the returned one never adds a Bearer
  // Authorization header to /token or /revoke (which accept only Basic).
  const oauth = createClient<paths>({ baseUrl, fetch });
  const client = createClient<paths>({ baseUrl, fetch });

  async function token(body: TokenRequest, id: string | undefined, secret: string | undefined): Promise<TokenResponse> {
    const { data, error, response } = await oauth.POST("/token", {
      body: withClient(body, id, secret),
      bodySerializer: formBody,
      headers: { "Content-Type": FORM, Authorization: basic(id, secret) },
    });
    if (data === undefined) throw oauthError(error, response);
    // RFC 6749 §7.1: a client must not use a token type it does not understand.
    if (data.token_type.toLowerCase() !== "bearer") {
      throw new Error(`gatehouse: unsupported token_type ${JSON.stringify(data.token_type)}`);
    }
    return data;
  }

  const mfaOtpGrant = (mfaToken: string, otp: string, c?: { clientId?: string; clientSecret?: string }) =>
    token(
      { grant_type: MFA_OTP_GRANT, mfa_token: mfaToken, otp },
      c?.clientId ?? clientId,
      c?.clientSecret ?? (c?.clientId === undefined ? clientSecret : undefined),
    );

  return Object.assign(client, {
    async passwordGrant(r: PasswordGrantRequest): Promise<TokenResponse> {
      const id = r.clientId ?? clientId;
      const secret = r.clientSecret ?? (r.clientId === undefined ? clientSecret : undefined);
      try {
        return await token(
          { grant_type: "password", username: r.username, password: r.password, scope: scopeParam(r.scope), otp: r.otp },
          id,
          secret,
        );
      } catch (err) {
        if (!(err instanceof OAuthError && err.error === "mfa_required" && err.mfa_token && r.onMfaRequired)) throw err;
        return mfaOtpGrant(err.mfa_token, await r.onMfaRequired(), { clientId: id, clientSecret: secret });
      }
    },
    mfaOtpGrant,
    refresh: (refreshToken: string, scope?: Scope) =>
      token({ grant_type: "refresh_token", refresh_token: refreshToken, scope: scopeParam(scope) }, clientId, clientSecret),
    async revoke(token: string, hint?: TokenTypeHint): Promise<void> {
      const { error, response } = await oauth.POST("/revoke", {
        body: withClient({ token, token_type_hint: hint }, clientId, clientSecret),
        bodySerializer: formBody,
        headers: { "Content-Type": FORM, Authorization: basic(clientId, clientSecret) },
      });
      if (!response.ok) throw oauthError(error, response);
    },
  });
}

/** The tokens a bearer middleware sends and refreshes. */
export interface Tokens {
  accessToken: string;
  refreshToken?: string;
  /** When the access token expires, in milliseconds since the epoch. */
  expiresAt?: number;
  scope?: string;
}

/**
 * Holds the current tokens. Subclass it and override `update`/`clear` to
 * persist them.
 */
export class TokenHolder {
  tokens?: Tokens;

  constructor(initial?: TokenResponse) {
    if (initial) this.update(initial);
  }

  /** Takes a token response (RFC 6749 §5.1) in place of the current tokens. */
  update(response: TokenResponse, now = Date.now()): void {
    this.tokens = {
      accessToken: response.access_token,
      // §6: a new refresh token replaces the old one; without one, keep it.
      refreshToken: response.refresh_token ?? this.tokens?.refreshToken,
      expiresAt: now + response.expires_in * 1000,
      scope: response.scope ?? this.tokens?.scope,
    };
  }

  clear(): void {
    this.tokens = undefined;
  }
}

/** Refresh this long before `expiresAt`, for clock skew and latency. */
const EXPIRY_LEEWAY_MS = 10_000;

/**
 * openapi-fetch middleware sending `Authorization: Bearer` from `holder`
 * (RFC 6750 §2.1). It refreshes the access token before a request once it
 * has expired, and after a 401 whose challenge says `error="invalid_token"`
 * (§3.1: revoked, expired or otherwise rejected), then retries that request
 * once. Concurrent requests share one refresh, since presenting a rotated
 * refresh token twice revokes the whole login (RFC 9700 §4.14.2). When the
 * refresh is refused with `invalid_grant` the login is over: `holder` is
 * cleared and the 401 is returned. A request that already carries an
 * Authorization header is left alone.
 *
 *     client.use(bearerAuth(client, holder));
 */
export function bearerAuth(client: Pick<GatehouseClient, "refresh">, holder: TokenHolder): Middleware {
  // The request as sent (body still unread) and the token it carried, for the retry.
  const sent = new WeakMap<Request, { retry: Request; accessToken: string }>();
  let refreshing: Promise<boolean> | undefined;

  // Resolves true when holder has a token other than `used` to retry with.
  function refreshFrom(used: string): Promise<boolean> {
    const tokens = holder.tokens;
    if (tokens === undefined) return Promise.resolve(false);
    if (tokens.accessToken !== used) return Promise.resolve(true); // refreshed meanwhile
    const refreshToken = tokens.refreshToken;
    if (refreshToken === undefined) return Promise.resolve(false);
    refreshing ??= client
      .refresh(refreshToken)
      .then(
        (response) => {
          holder.update(response);
          return true;
        },
        (err: unknown) => {
          if (err instanceof OAuthError && err.error === "invalid_grant") {
            holder.clear();
            return false;
          }
          throw err;
        },
      )
      .finally(() => {
        refreshing = undefined;
      });
    return refreshing;
  }

  return {
    async onRequest({ request }) {
      if (request.headers.has("Authorization")) return undefined;
      let tokens = holder.tokens;
      if (tokens?.expiresAt !== undefined && Date.now() >= tokens.expiresAt - EXPIRY_LEEWAY_MS) {
        await refreshFrom(tokens.accessToken);
        tokens = holder.tokens;
      }
      if (tokens === undefined) return undefined;
      request.headers.set("Authorization", `Bearer ${tokens.accessToken}`);
      sent.set(request, { retry: request.clone(), accessToken: tokens.accessToken });
      return request;
    },
    async onResponse({ request, response, options }) {
      const first = sent.get(request);
      if (first === undefined || response.status !== 401) return undefined;
      if (!isInvalidToken(response.headers.get("WWW-Authenticate"))) return undefined;
      if (!(await refreshFrom(first.accessToken)) || holder.tokens === undefined) return undefined;
      await response.body?.cancel();
      first.retry.headers.set("Authorization", `Bearer ${holder.tokens.accessToken}`);
      return options.fetch(first.retry);
    },
  };
}

const FORM = "application/x-www-form-urlencoded";

// formBody serializes the form parameters that have a value (RFC 6749
// Appendix B); parameters sent without one count as omitted (§3.1), so
// undefined ones are left out rather than sent as "undefined".
function formBody(body: Record<string, string | undefined>): string {
  const form = new URLSearchParams();
  for (const [name, value] of Object.entries(body)) {
    if (value !== undefined) form.append(name, value);
  }
  return form.toString();
}

function scopeParam(scope: Scope | undefined): string | undefined {
  if (scope === undefined) return undefined;
  return typeof scope === "string" ? scope : scope.join(" ");
}

// A public client names itself with client_id in the form (§3.2.1); a
// confidential one authenticates with HTTP Basic instead (§2.3.1: the
// server must support it, the body is NOT RECOMMENDED).
function withClient<T extends object>(body: T, id: string | undefined, secret: string | undefined): T {
  return id !== undefined && secret === undefined ? { ...body, client_id: id } : body;
}

// basic builds the §2.3.1 header: id and secret are each form-urlencoded
// (Appendix B) before being joined and base64-encoded.
function basic(id: string | undefined, secret: string | undefined): string | undefined {
  if (id === undefined || secret === undefined) return undefined;
  const enc = (s: string) => new URLSearchParams([["", s]]).toString().slice(1);
  return `Basic ${btoa(`${enc(id)}:${enc(secret)}`)}`;
}

function oauthError(body: unknown, response: Response): Error {
  if (typeof body === "object" && body !== null && typeof (body as OAuth2ErrorBody).error === "string") {
    return new OAuthError(response.status, body as OAuth2ErrorBody);
  }
  return new Error(`gatehouse: unexpected ${response.status} response from ${response.url}`, { cause: body });
}

// isInvalidToken reads an RFC 6750 §3 challenge such as
// `Bearer realm="gatehouse", error="invalid_token", error_description="…"`.
function isInvalidToken(challenge: string | null): boolean {
  return challenge !== null && /^\s*Bearer\b/i.test(challenge) && /(?:^|[\s,])error\s*=\s*"?invalid_token\b/i.test(challenge);
}
