"""A FastAPI resource server that accepts gatehouse access tokens.

The FastAPI tutorial's ``get_current_user``, backed by gatehouse instead of
a users table: the token is verified locally against gatehouse's JWKS
(PyJWT's PyJWKClient, which fetches the keys again when a token names a
key it has not seen, so key rotation needs nothing here), and its
``typ``, ``iss``, ``aud``, ``exp`` and the operation's scopes are checked.
Refusals are RFC 6750 challenges with RFC 9457 problem details, as
gatehouse answers them.

Run it (Debian: apt-get install python3-fastapi python3-uvicorn python3-jwt
python3-cryptography):

    GATEHOUSE_ISSUER=http://127.0.0.1:8080 python3 -m uvicorn app:app --port 8000

Settings, from the environment:

- GATEHOUSE_ISSUER: gatehouse's issuer URL (its RFC 8414 ``issuer``);
  required.
- GATEHOUSE_AUDIENCE: the ``aud`` gatehouse signs (default ``gatehouse``).
- GATEHOUSE_INTROSPECT_TOKEN: an access token with the
  ``tokens:introspect`` scope. With it, ``/account/delete`` also asks
  gatehouse's ``/introspect`` whether the caller's token is still active
  (RFC 7662), so a token revoked a moment ago is refused there at once;
  every other route accepts a valid token until it expires.
"""

import json
import os
import urllib.parse
import urllib.request

import jwt
from fastapi import Depends, FastAPI, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import OAuth2PasswordBearer, SecurityScopes

ISSUER = os.environ["GATEHOUSE_ISSUER"].rstrip("/")
AUDIENCE = os.environ.get("GATEHOUSE_AUDIENCE", "gatehouse")
INTROSPECT_TOKEN = os.environ.get("GATEHOUSE_INTROSPECT_TOKEN", "")
REALM = "gatehouse"

# Only the asymmetric algorithms gatehouse signs with: never HS256 (a
# public key must not be usable as an HMAC secret) and never "none".
ALGORITHMS = ["RS256", "ES256", "EdDSA"]
ACCESS_TOKEN_TYPES = {"at+jwt", "application/at+jwt"}  # RFC 9068 §4

# Swagger UI's Authorize button at /docs logs in at gatehouse's /token.
# auto_error=False: the refusals below are RFC 6750's, with the realm.
oauth2_scheme = OAuth2PasswordBearer(
    tokenUrl=ISSUER + "/token",
    scopes={"me": "read your own account", "users:read": "read accounts"},
    auto_error=False,
)
jwks = jwt.PyJWKClient(ISSUER + "/.well-known/jwks.json", cache_keys=True, lifespan=300)

app = FastAPI(title="gatehouse resource server example")


class Refused(Exception):
    """A refused request: an RFC 6750 §3 error."""

    def __init__(self, status, description, code="", scope=""):
        self.status, self.description, self.code, self.scope = status, description, code, scope


@app.exception_handler(Refused)
def refused(_request: Request, e: Refused):
    challenge = f'Bearer realm="{REALM}"'
    if e.code:
        challenge += f', error="{e.code}", error_description="{e.description}"'
    if e.scope:
        challenge += f', scope="{e.scope}"'
    body = {"type": "about:blank", "title": TITLES[e.status], "status": e.status, "detail": e.description}
    return JSONResponse(body, status_code=e.status, media_type="application/problem+json",
                        headers={"WWW-Authenticate": challenge})


TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden"}


def bearer_token(request: Request, token):
    """The token, by gatehouse's rule (package bearer, RFC 6750 §2.1, §3.1)."""
    headers = request.headers.getlist("authorization")
    in_query = "access_token" in request.query_params
    if len(headers) > 1:
        raise Refused(400, "more than one Authorization header", "invalid_request")
    if not token:
        raise Refused(401, "an access token is required")
    if in_query:
        raise Refused(400, "the access token was sent both in the Authorization header and in the query", "invalid_request")
    return token


def verify(token):
    """The claims of a valid gatehouse access token, or Refused."""
    try:
        header = jwt.get_unverified_header(token)
        if str(header.get("typ", "")).lower() not in ACCESS_TOKEN_TYPES:
            raise Refused(401, "not an access token", "invalid_token")
        key = jwks.get_signing_key_from_jwt(token)
        return jwt.decode(
            token,
            key.key,
            algorithms=ALGORITHMS,
            audience=AUDIENCE,
            issuer=ISSUER,
            leeway=30,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
    except Refused:
        raise
    except jwt.ExpiredSignatureError:
        raise Refused(401, "the access token expired", "invalid_token")
    except (jwt.PyJWTError, ValueError):
        raise Refused(401, "the access token is invalid", "invalid_token")


async def get_current_user(security_scopes: SecurityScopes, request: Request, token: str = Depends(oauth2_scheme)):
    """The tutorial's dependency: the caller's claims, with every scope the
    route names in Security(..., scopes=[...])."""
    claims = verify(bearer_token(request, token))
    granted = set(claims.get("scope", "").split())
    if not set(security_scopes.scopes) <= granted:
        raise Refused(403, "the access token lacks a required scope", "insufficient_scope", security_scopes.scope_str)
    return claims


async def get_active_user(claims=Security(get_current_user, scopes=["me"]), token: str = Depends(oauth2_scheme)):
    """get_current_user, and gatehouse confirms the token is still active
    (not revoked, its user not disabled): RFC 7662 introspection."""
    if not INTROSPECT_TOKEN:
        return claims
    req = urllib.request.Request(
        ISSUER + "/introspect",
        data=urllib.parse.urlencode({"token": token, "token_type_hint": "access_token"}).encode(),
        headers={"Authorization": "Bearer " + INTROSPECT_TOKEN, "Content-Type": "application/x-www-form-urlencoded"},
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        if not json.load(resp).get("active"):
            raise Refused(401, "the access token was revoked", "invalid_token")
    return claims


@app.get("/me")
async def me(claims=Security(get_current_user, scopes=["me"])):
    return {"sub": claims["sub"], "username": claims.get("preferred_username"), "scope": claims.get("scope", "")}


@app.get("/reports/users")
async def users_report(claims=Security(get_current_user, scopes=["users:read"])):
    return {"requested_by": claims.get("preferred_username")}


@app.post("/account/delete")
async def delete_account(claims=Depends(get_active_user)):
    return {"deleted": claims["sub"]}
