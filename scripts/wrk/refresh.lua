-- POST /token with the refresh grant (RFC 6749 §6), rotating: every
-- refresh token is presented once, and the one each answer returns (an
-- opaque base64url string) is presented next. Presenting a parent again
-- would be a grace replay inside the server's reuse window (the same
-- child, no rotation) and reuse after it (the login revoked, RFC 9700
-- §4.14.2), so a chain is never presented twice.
--
-- BENCH_REFRESH_TOKENS holds a refresh token per connection and a few
-- spare, from as many logins, comma-separated; BENCH_THREADS is wrk's -t.
-- Each thread takes its share as a pool: a request takes a token out, its
-- answer puts the successor back. A thread has at most as many requests in
-- flight as connections (wrk builds a request or two it never sends: the
-- spares cover those), so the pool never runs dry while every refresh
-- succeeds. When an answer is not 200 (or was lost with its connection)
-- that chain is broken: a request that finds the pool empty is counted as
-- exhausted and sent with a token the server refuses (400, counted as
-- other), so a broken chain shows in the RESULT line.
dofile("scripts/wrk/report.lua")

local all = {}
for tok in string.gmatch(os.getenv("BENCH_REFRESH_TOKENS") or "", "[^,]+") do
  table.insert(all, tok)
end
local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")

function setup_thread(thread, n)
  local mine = {}
  for i = n, #all, nthreads do
    table.insert(mine, all[i])
  end
  thread:set("pool_csv", table.concat(mine, ","))
end

function init_thread(args)
  pool = {}
  for tok in string.gmatch(pool_csv or "", "[^,]+") do
    table.insert(pool, tok)
  end
end

local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }

function request()
  local tok = pool and table.remove(pool)
  if not tok then
    exhausted = (exhausted or 0) + 1
    tok = "exhausted"
  end
  return wrk.format("POST", "/token", headers, "grant_type=refresh_token&refresh_token=" .. tok)
end

function response(status, headers, body)
  count(status, body, headers)
  if status == 200 then
    local next_token = body:match('"refresh_token"%s*:%s*"([^"]+)"')
    if next_token then
      table.insert(pool, next_token)
    end
  end
end
