-- nomadml's router metrics (see router.nomad.hcl): per backend, i.e. per model
-- version of a line, the requests by path and status code and a latency histogram,
-- timed from the moment HAProxy has parsed the request to the moment its answer
-- leaves, the router's 504s included; answers no server gave (the router's 503 when
-- a backend has no usable server) are counted apart, per backend. Served as
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
local max_labels = 64 -- per version and path; beyond it predictions count as label "other"
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

-- A latency observation into a series' histogram, and a histogram as Prometheus lines.
local function observe(s, took)
  for i = 1, #bounds do
    if took <= bounds[i] then s.buckets[i] = s.buckets[i] + 1 end
  end
  s.count, s.sum = s.count + 1, s.sum + took
end

local function histogram(out, h, l, s)
  for i = 1, #bounds do
    table.insert(out, string.format('%s_bucket{%s,le="%g"} %d', h, l, bounds[i], s.buckets[i]))
  end
  table.insert(out, string.format('%s_bucket{%s,le="+Inf"} %d', h, l, s.count))
  table.insert(out, string.format("%s_sum{%s} %.6f", h, l, s.sum))
  table.insert(out, string.format("%s_count{%s} %d", h, l, s.count))
end

core.register_action("nomadml_begin", { "http-req" }, function(txn)
  txn:set_var("txn.nomadml_t0", micros())
  txn:set_var("txn.nomadml_path", txn.f:path())
  -- nomadml's probes (X-Nomadml-Probe) are counted apart as well.
  if txn.f:req_hdr_cnt("x-nomadml-probe") > 0 then txn:set_var("txn.nomadml_probe", 1) end
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
  -- No server answered (none usable in the backend): the router's own 503, counted
  -- apart, so that no gate blames a version for the router's lack of a server.
  if txn.f:srv_name() == nil then
    s.nosrv = (s.nosrv or 0) + 1
    return ""
  end
  if txn:get_var("txn.nomadml_probe") ~= nil then s.probes = (s.probes or 0) + 1 end
  local code = tostring(txn.f:status() or 0)
  s.codes[code] = (s.codes[code] or 0) + 1
  observe(s, took)
  -- The answer's predicted labels (X-Nomadml-Predictions: label=count,... with each
  -- label percent-encoded by the server): the prediction gate reads them per version.
  local said = txn.f:res_fhdr("x-nomadml-predictions") -- whole: hdr() splits at commas
  if said ~= nil and said ~= "" then
    s.predicted = s.predicted or {}
    for label, n in string.gmatch(said, "([^,=]+)=(%d+)") do
      if s.predicted[label] == nil then
        if (s.nlabels or 0) >= max_labels then label = "other" else s.nlabels = (s.nlabels or 0) + 1 end
      end
      s.predicted[label] = (s.predicted[label] or 0) + tonumber(n)
    end
  end
  return ""
end)

-- Shadow traffic (routing.py's mirror): a share of a line's requests is replayed in
-- the background to a version that serves no client; its answer is compared with the
-- one the client got, then discarded. The client never waits for it: the response
-- action only queues (bounded: when full, the replay is dropped and counted) and a few
-- background tasks replay through HAProxy's httpclient (2.5+), one request at a time.
local shadow_queue, shadow_head, shadow_tail = {}, 1, 0
local shadow_max_queue = 64
local shadow_workers = 4
local shadows = {} -- per shadow backend: outcomes and a latency histogram
local shadow_next = 0

local function shadow_series(backend)
  local s = shadows[backend]
  if s == nil then
    s = { outcomes = { agree = 0, disagree = 0, error = 0, dropped = 0 }, buckets = {}, count = 0, sum = 0 }
    for i = 1, #bounds do s.buckets[i] = 0 end
    shadows[backend] = s
  end
  return s
end

-- http-request, after wait-for-body: what to replay (the body is gone once forwarded).
core.register_action("nomadml_capture", { "http-req" }, function(txn)
  txn:set_priv({
    method = txn.f:method(), path = txn.f:path(), query = txn.f:query(),
    body = txn.f:req_body() or "", ctype = txn.f:req_hdr("content-type"),
  })
end, 0)

-- http-response (2xx), after wait-for-body: queue the replay with the client's answer.
core.register_action("nomadml_mirror", { "http-res" }, function(txn)
  local req, backend = txn:get_priv(), txn:get_var("txn.mirror")
  if req == nil or backend == nil then return end
  local answer = txn.f:res_body() or ""
  local declared = tonumber(txn.f:res_hdr("content-length") or "")
  if declared ~= nil and declared ~= string.len(answer) then return end -- larger than a buffer
  local s = shadow_series(backend)
  if shadow_tail - shadow_head + 1 >= shadow_max_queue then
    s.outcomes.dropped = s.outcomes.dropped + 1
    return
  end
  shadow_tail = shadow_tail + 1
  local compare = txn:get_var("txn.mirror_compare")
  local tolerance = tonumber(txn:get_var("txn.mirror_tolerance") or "")
  shadow_queue[shadow_tail] = { backend = backend, req = req, answer = answer, compare = compare, tolerance = tolerance }
end, 0)

-- What is compared (the mirror's compare): by default a JSON answer from its
-- "predictions" key on (the reference server's version and model name come before it
-- and differ by design), else the body; "labels": only the "label" fields, in order
-- (probabilities may differ); "body": the whole body.
local function prediction_part(body)
  local at = string.find(body, '"predictions"', 1, true)
  return at and string.sub(body, at) or body
end

local function comparable(body, compare)
  if compare == "body" then return body end
  if compare == "labels" then
    local found = {}
    for label in string.gmatch(body, '"label"%s*:%s*"([^"]*)"') do table.insert(found, label) end
    if #found > 0 then return table.concat(found, "\n") end
  end
  return prediction_part(body)
end

-- With a tolerance: the text with its JSON numbers taken out, and the numbers. JSON
-- strings (labels) are kept whole in the text, digits and all.
local function shape_and_numbers(text)
  local shape, numbers, i, n = {}, {}, 1, string.len(text)
  while i <= n do
    local c = string.sub(text, i, i)
    local s, e = string.find(text, "^%-?%d+%.?%d*[eE]?[-+]?%d*", i)
    if c == '"' then
      local j = i + 1
      while j <= n and string.sub(text, j, j) ~= '"' do
        j = j + (string.sub(text, j, j) == "\\" and 2 or 1)
      end
      table.insert(shape, string.sub(text, i, j))
      i = j + 1
    elseif s ~= nil and tonumber(string.sub(text, s, e)) ~= nil then
      table.insert(numbers, tonumber(string.sub(text, s, e)))
      table.insert(shape, "#")
      i = e + 1
    else
      table.insert(shape, c)
      i = i + 1
    end
  end
  return table.concat(shape), numbers
end

-- Numbers agree within the tolerance, absolute or relative; the rest must be identical.
local function agree(a, b, tolerance)
  if tolerance == nil or tolerance <= 0 then return a == b end
  local shape_a, numbers_a = shape_and_numbers(a)
  local shape_b, numbers_b = shape_and_numbers(b)
  if shape_a ~= shape_b then return false end
  for k, x in ipairs(numbers_a) do
    local y = numbers_b[k]
    local diff = math.abs(x - y)
    if diff > tolerance and diff > tolerance * math.max(math.abs(x), math.abs(y)) then return false end
  end
  return true
end

local function shadow_server(backend)
  local be = core.backends[backend]
  if be == nil then return nil end
  local up = {}
  for _, srv in pairs(be.servers) do
    local status = srv:get_stats().status or ""
    -- table.insert: a length operator after "[" would open a comment in the job template
    if string.sub(status, 1, 2) == "UP" or status == "no check" then table.insert(up, srv:get_addr()) end
  end
  if #up == 0 then return nil end
  table.sort(up)
  shadow_next = shadow_next + 1
  return up[shadow_next % #up + 1]
end

local function shadow_replay(item)
  local s, req = shadow_series(item.backend), item.req
  local address = shadow_server(item.backend)
  local hc = core.httpclient()
  local send = ({ GET = hc.get, POST = hc.post, PUT = hc.put, DELETE = hc.delete, HEAD = hc.head })[req.method]
  if address == nil or send == nil then
    s.outcomes.error = s.outcomes.error + 1
    return
  end
  local url = "http://" .. address .. req.path .. ((req.query and req.query ~= "") and ("?" .. req.query) or "")
  -- httpclient sends a body chunked unless told its length (the servers want the length).
  local headers = { ["content-length"] = { tostring(string.len(req.body)) }, ["x-nomadml-shadow"] = { "1" } }
  if req.ctype then headers["content-type"] = { req.ctype } end
  local t0 = micros()
  local ok, res = pcall(send, hc, { url = url, headers = headers, body = req.body, timeout = 5000 })
  local took = (micros() - t0) / 1000000
  if not ok or res == nil or res.status == nil or res.status < 200 or res.status > 299 then
    s.outcomes.error = s.outcomes.error + 1
  elseif agree(comparable(res.body or "", item.compare), comparable(item.answer, item.compare), item.tolerance) then
    s.outcomes.agree = s.outcomes.agree + 1
  else
    s.outcomes.disagree = s.outcomes.disagree + 1
  end
  observe(s, took)
end

local function shadow_worker()
  while true do
    if shadow_head > shadow_tail then
      core.msleep(5)
    else
      local item = shadow_queue[shadow_head]
      shadow_queue[shadow_head], shadow_head = nil, shadow_head + 1
      if item ~= nil then shadow_replay(item) end
    end
  end
end
for _ = 1, shadow_workers do core.register_task(shadow_worker) end

local function shadow_metrics(out)
  table.insert(out, "# TYPE nomadml_router_shadow_requests_total counter")
  for backend, s in pairs(shadows) do
    for outcome, n in pairs(s.outcomes) do
      table.insert(out, string.format('nomadml_router_shadow_requests_total{backend="%s",outcome="%s"} %d', backend, outcome, n))
    end
  end
  local h = "nomadml_router_shadow_duration_seconds"
  table.insert(out, "# TYPE " .. h .. " histogram")
  for backend, s in pairs(shadows) do
    histogram(out, h, string.format('backend="%s"', backend), s)
  end
end

local function labels(s)
  local path = (s.path:gsub('[\\"]', "\\%0"))
  path = (path:gsub("\n", "\\n"))
  return string.format('backend="%s",path="%s"', s.backend, path)
end

-- Per series, a count kept apart from its requests: probes, answers with no server.
local function apart_metrics(out, name, field)
  table.insert(out, "# TYPE " .. name .. " counter")
  for _, s in pairs(series) do
    if s[field] then
      table.insert(out, string.format("%s{%s} %d", name, labels(s), s[field]))
    end
  end
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
    histogram(out, h, labels(s), s)
  end
  table.insert(out, "# TYPE nomadml_router_predictions_total counter")
  for _, s in pairs(series) do
    for label, n in pairs(s.predicted or {}) do
      local shown = (label:gsub('[\\"]', "\\%0"))
      table.insert(out, string.format('nomadml_router_predictions_total{%s,label="%s"} %d', labels(s), shown, n))
    end
  end
  apart_metrics(out, "nomadml_router_probe_requests_total", "probes")
  apart_metrics(out, "nomadml_router_nosrv_requests_total", "nosrv")
  shadow_metrics(out)
  local body = table.concat(out, "\n") .. "\n"
  applet:set_status(200)
  applet:add_header("content-type", "text/plain; version=0.0.4")
  applet:add_header("content-length", tostring(string.len(body)))
  applet:start_response()
  applet:send(body)
end)
