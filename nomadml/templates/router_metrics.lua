-- nomadml's router metrics (see router.nomad.hcl): per backend, i.e. per model
-- version of a line, the requests by path and status code and a latency histogram,
-- timed from the moment HAProxy has parsed the request to the moment its answer
-- leaves, the router's own answers (503 with no server, 504) included. Served as
-- Prometheus text at /nomadml-router/metrics. lua-load: one Lua state shared by
-- HAProxy's threads, so the counters are the process's (a reload starts at zero, which
-- the readers take as a counter reset).
-- Fine below 25 ms: a model behind the router answers in a few milliseconds on a
-- LAN, and a percentile is interpolated inside its bucket.
local bounds = {
  0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025,
  0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
}
local max_paths = 32 -- beyond this many distinct paths, requests count as path "other"
local series = {}
local paths, npaths = {}, 0
local counting_since = os.time() -- this process's counters start here (a reload: anew)

local function path_label(path)
  if paths[path] then return path end
  if npaths >= max_paths then return "other" end
  paths[path], npaths = true, npaths + 1
  return path
end

local function micros()
  local t = core.now()
  return t.sec * 1000000 + t.usec
end

core.register_action("nomadml_begin", { "http-req" }, function(txn)
  txn:set_var("txn.nomadml_t0", micros())
  txn:set_var("txn.nomadml_path", txn.f:path())
end, 0)

-- A sample fetch, not an action: HAProxy 2.6 runs no Lua action in
-- http-after-response, and only there are the router's own answers seen too.
core.register_fetches("nomadml_observe", function(txn)
  local t0 = txn:get_var("txn.nomadml_t0")
  local backend = txn.f:be_name()
  if t0 == nil or backend == nil or backend == txn.f:fe_name() then return "" end
  local took = (micros() - t0) / 1000000
  local path = path_label(txn:get_var("txn.nomadml_path") or "")
  local key = backend .. " " .. path
  local s = series[key]
  if s == nil then
    s = { backend = backend, path = path, codes = {}, buckets = {}, count = 0, sum = 0 }
    for i = 1, #bounds do s.buckets[i] = 0 end
    series[key] = s
  end
  local code = tostring(txn.f:status() or 0)
  s.codes[code] = (s.codes[code] or 0) + 1
  for i = 1, #bounds do
    if took <= bounds[i] then s.buckets[i] = s.buckets[i] + 1 end
  end
  s.count, s.sum = s.count + 1, s.sum + took
  return ""
end)

local function labels(s)
  local path = (s.path:gsub('[\\"]', "\\%0"))
  path = (path:gsub("\n", "\\n"))
  return string.format('backend="%s",path="%s"', s.backend, path)
end

core.register_service("nomadml_metrics", "http", function(applet)
  local out = {
    "# TYPE nomadml_router_counting_since_seconds gauge",
    string.format("nomadml_router_counting_since_seconds %d", counting_since),
    "# TYPE nomadml_router_requests_total counter",
  }
  for _, s in pairs(series) do
    for code, n in pairs(s.codes) do
      table.insert(out, string.format("nomadml_router_requests_total{%s,code=\"%s\"} %d", labels(s), code, n))
    end
  end
  local h = "nomadml_router_request_duration_seconds"
  table.insert(out, "# TYPE " .. h .. " histogram")
  for _, s in pairs(series) do
    local l = labels(s)
    for i = 1, #bounds do
      table.insert(out, string.format("%s_bucket{%s,le=\"%g\"} %d", h, l, bounds[i], s.buckets[i]))
    end
    table.insert(out, string.format("%s_bucket{%s,le=\"+Inf\"} %d", h, l, s.count))
    table.insert(out, string.format("%s_sum{%s} %.6f", h, l, s.sum))
    table.insert(out, string.format("%s_count{%s} %d", h, l, s.count))
  end
  local body = table.concat(out, "\n") .. "\n"
  applet:set_status(200)
  applet:add_header("content-type", "text/plain; version=0.0.4")
  applet:add_header("content-length", tostring(string.len(body)))
  applet:start_response()
  applet:send(body)
end)
