-- POST /introspect (RFC 7662 §2.1) of BENCH_INTROSPECT_TOKEN, a valid
-- access token, by a caller holding the bearer BENCH_ACCESS_TOKEN with
-- the tokens:introspect scope (RFC 6750 §2.1). An answer counts as ok only
-- when it is 200 and says "active":true; a 200 that does not is counted
-- as other, under the status "200_inactive".
dofile("scripts/wrk/report.lua")

wrk.method = "POST"
wrk.body = "token=" .. (os.getenv("BENCH_INTROSPECT_TOKEN") or "") .. "&token_type_hint=access_token"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_ACCESS_TOKEN") or "")

function response(status, headers, body)
  if status == 200 and not body:find('"active"%s*:%s*true') then
    status = "200_inactive"
  end
  count(status, body, headers)
end
