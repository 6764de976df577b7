-- Shared by the wrk scripts of scripts/bench.sh: counts answers by status
-- in each thread and prints one machine-readable RESULT line when wrk is
-- done. A script that defines response() must call count(status, body,
-- headers) in it; without response() (the cheapest for wrk), statuses are
-- split only into 2xx/3xx and the rest (summary.errors.status). A script
-- may also add to the thread's `exhausted` (requests it had nothing to
-- send for, as a refresh chain that broke).

local threads = {}
-- How many unexpected answers each thread shows on stderr.
local show = tonumber(os.getenv("BENCH_SHOW_UNEXPECTED") or "3")

function setup(thread)
  table.insert(threads, thread)
  if setup_thread then
    setup_thread(thread, #threads)
  end
end

function init(args)
  ok, busy, throttled, other, retry_after, exhausted = 0, 0, 0, 0, 0, 0
  statuses = {}
  shown = 0
  if init_thread then
    init_thread(args)
  end
end

-- has_header reports whether the answer carries header name (any case).
local function has_header(headers, name)
  if not headers then
    return false
  end
  for k in pairs(headers) do
    if string.lower(k) == name then
      return true
    end
  end
  return false
end

-- count records one answer: 200 is ok, 503 is busy (the hashing limiter
-- refusing a login; retry_after counts those with Retry-After, RFC 9110
-- §10.2.3), 429 is throttled (the login throttle), anything else is other;
-- the first few of those are shown on stderr with their body. status may
-- be a string naming an answer the script judged wrong (as "200_inactive").
function count(status, body, headers)
  statuses[status] = (statuses[status] or 0) + 1
  if status == 200 then
    ok = ok + 1
  elseif status == 503 then
    busy = busy + 1
    if has_header(headers, "retry-after") then
      retry_after = retry_after + 1
    end
  elseif status == 429 then
    throttled = throttled + 1
  else
    other = other + 1
    if shown < show and body then
      shown = shown + 1
      io.stderr:write(string.format("unexpected answer %s: %s\n", tostring(status), body))
    end
  end
end

function done(summary, latency, requests)
  local o, b, th, x, ra, ex = 0, 0, 0, 0, 0, 0
  local all = {}
  for _, t in ipairs(threads) do
    o = o + (t:get("ok") or 0)
    b = b + (t:get("busy") or 0)
    th = th + (t:get("throttled") or 0)
    x = x + (t:get("other") or 0)
    ra = ra + (t:get("retry_after") or 0)
    ex = ex + (t:get("exhausted") or 0)
    for status, n in pairs(t:get("statuses") or {}) do
      all[status] = (all[status] or 0) + n
    end
  end
  local e = summary.errors
  local hist = {}
  for status, n in pairs(all) do
    table.insert(hist, status .. ":" .. n)
  end
  table.sort(hist)
  if o + b + th + x == 0 then
    -- No response() callback: wrk counts non-2xx/3xx answers itself.
    o = summary.requests - e.status
    x = e.status
    hist = { "2xx/3xx:" .. o, "other:" .. x }
  end
  io.write(string.format(
    "RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d max_us=%d ok=%d busy=%d throttled=%d other=%d retry_after=%d exhausted=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d statuses=%s\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    o, b, th, x, ra, ex, e.connect, e.read, e.write, e.timeout, table.concat(hist, ",")))
end
