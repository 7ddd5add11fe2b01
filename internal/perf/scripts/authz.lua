-- wrk script: /v1/authz asked the way nginx auth_request asks it.
--   ACCESS_TOKEN      the Bearer token (required)
--   ORIGINAL_METHOD   the original request's method (default GET: allowed
--                     with the default policy; POST needs a step-up: 401)
--   EXPECT_STATUS     the status every answer must have (default 200)
-- done() prints one RESULT line that load.sh and docs/performance.md use;
-- answers with another status are counted as "unexpected", so a run that
-- only measured refusals cannot pass for a run of decisions.
local token = os.getenv("ACCESS_TOKEN")
if token == nil or token == "" then
  error("ACCESS_TOKEN is not set")
end
local method = os.getenv("ORIGINAL_METHOD") or "GET"
local expect = tonumber(os.getenv("EXPECT_STATUS") or "200")

wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer " .. token
wrk.headers["X-Original-Method"] = method
wrk.headers["X-Original-URI"] = "/api/orders/7"

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  unexpected = 0
end

function response(status, headers, body)
  if status ~= expect then
    unexpected = unexpected + 1
  end
end

function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do
    bad = bad + t:get("unexpected")
  end
  local secs = summary.duration / 1e6
  local errs = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format(
    "RESULT method=%s requests=%d duration_s=%.1f rps=%.0f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f unexpected=%d socket_errors=%d\n",
    method, summary.requests, secs, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, bad, errs))
end
