// Compile-time checks of the published declarations (dist/index.d.ts and the
// generated dist/schema.d.ts): `npm test` type-checks this file, never runs it.
import {
  OAuthError,
  TokenHolder,
  bearerAuth,
  createGatehouseClient,
  type OAuthErrorCode,
  type SessionsRevoked,
  type TokenResponse,
  type User,
  type UserSession,
} from "../dist/index.js";

export async function typed(): Promise<void> {
  const gatehouse = createGatehouseClient({ baseUrl: "http://127.0.0.1:8080" });
  const token: TokenResponse = await gatehouse.passwordGrant({ username: "alice", password: "wonderland", scope: ["me"] });
  gatehouse.use(bearerAuth(gatehouse, new TokenHolder(token)));

  const me = await gatehouse.GET("/users/me");
  if (me.data) {
    const user: User = me.data;
    user.username.toLowerCase();
  }
  await gatehouse.POST("/users", { body: { username: "bob", password: "builder123", scopes: ["me"] } });
  // @ts-expect-error password is required by NewUser
  await gatehouse.POST("/users", { body: { username: "bob" } });
  // @ts-expect-error limit is an integer
  await gatehouse.GET("/users", { params: { query: { limit: "ten" } } });
  // @ts-expect-error no such operation in api/openapi.yaml
  await gatehouse.GET("/nope");
  // @ts-expect-error RFC 7009 hints are access_token and refresh_token
  await gatehouse.revoke("token", "id_token");
  // A second factor: in the same request, or supplied when the server asks.
  await gatehouse.passwordGrant({ username: "alice", password: "wonderland", otp: "123456" });
  await gatehouse.passwordGrant({ username: "alice", password: "wonderland", onMfaRequired: async () => "123456" });
  const second: TokenResponse = await gatehouse.mfaOtpGrant("mfa.id.secret", "123456");
  void second;
  // @ts-expect-error the code is a string
  await gatehouse.passwordGrant({ username: "alice", password: "wonderland", otp: 123456 });

  const sessions = await gatehouse.GET("/users/me/sessions");
  if (sessions.data) {
    const [first]: UserSession[] = sessions.data.sessions;
    const current: boolean | undefined = first?.current;
    void [current, first?.user_agent?.length];
  }
  const ended = await gatehouse.DELETE("/users/me/sessions", { params: { query: { keep_current: true } } });
  if (ended.data) {
    const revoked: SessionsRevoked = ended.data;
    revoked.revoked.toFixed();
  }
  // @ts-expect-error keep_current is a boolean
  await gatehouse.DELETE("/users/me/sessions", { params: { query: { keep_current: "yes" } } });
  await gatehouse.DELETE("/users/{username}/sessions/{session_id}", { params: { path: { username: "bob", session_id: "sid" } } });
  // @ts-expect-error session_id is a required path parameter
  await gatehouse.DELETE("/users/{username}/sessions/{session_id}", { params: { path: { username: "bob" } } });

  try {
    await gatehouse.refresh("refresh-token");
  } catch (err) {
    if (err instanceof OAuthError) {
      const code: OAuthErrorCode = err.error;
      // @ts-expect-error codes come from the spec's OAuth2Error enum
      const wrong: typeof code = "not_a_code";
      void [err.status, err.error_description, wrong];
    }
  }
}
