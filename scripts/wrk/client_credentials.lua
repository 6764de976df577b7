-- POST /token with grant_type=client_credentials (RFC 6749 §4.4), the
-- client authenticating with HTTP Basic (§2.3.1): BENCH_CLIENT_BASIC is
-- the base64 of "client_id:client_secret". An answer counts as ok only
-- when it is 200 and carries an access token.
dofile("scripts/wrk/report.lua")

wrk.method = "POST"
wrk.body = "grant_type=client_credentials"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. (os.getenv("BENCH_CLIENT_BASIC") or "")

function response(status, headers, body)
  if status == 200 and not body:find('"access_token"') then
    status = "200_no_token"
  end
  count(status, body, headers)
end
