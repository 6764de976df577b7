-- POST /token with the password grant (RFC 6749 §4.3.2) for the users in
-- BENCH_USERNAMES (comma-separated), all with BENCH_PASSWORD; BENCH_THREADS
-- is wrk's -t. The password is right, so failures never accumulate; and as
-- the login throttle counts a login in progress as a failure until it
-- succeeds (so parallel guesses cost as much as serial ones), each thread
-- cycles through its own share of the users, keeping the logins in flight
-- for one user and address under the free failures. 200, 503 (the hashing
-- limiter's queue is full; those with Retry-After counted too) and 429
-- (throttled) are counted apart.
dofile("scripts/wrk/report.lua")

local function urlencode(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

local all = {}
for name in string.gmatch(os.getenv("BENCH_USERNAMES") or "", "[^,]+") do
  table.insert(all, name)
end
local nthreads = tonumber(os.getenv("BENCH_THREADS") or "2")
local password = urlencode(os.getenv("BENCH_PASSWORD") or "")

function setup_thread(thread, n)
  local mine = {}
  for i = n, #all, nthreads do
    table.insert(mine, all[i])
  end
  if #mine == 0 then
    mine = all
  end
  thread:set("users_csv", table.concat(mine, ","))
end

function init_thread(args)
  bodies = {}
  for name in string.gmatch(users_csv or "", "[^,]+") do
    table.insert(bodies, "grant_type=password&scope=me&username=" .. urlencode(name) .. "&password=" .. password)
  end
  next_body = 0
end

local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }

function request()
  next_body = next_body % #bodies + 1
  return wrk.format("POST", "/token", headers, bodies[next_body])
end

function response(status, headers, body)
  count(status, body, headers)
end
