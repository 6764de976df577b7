-- GET the URL given to wrk, with a bearer token when BENCH_ACCESS_TOKEN is
-- set (RFC 6750 §2.1).
dofile("scripts/wrk/report.lua")

local token = os.getenv("BENCH_ACCESS_TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
