-- wrk script: POST one fixed MCP 2026-07-28 request and classify every reply.
--
-- Usage (bench/run.py builds this command line):
--   wrk ... -s bench/mcp.lua http://127.0.0.1:PORT/mcp -- '<json body>' 'Header: value' ...
--
-- A reply counts as "ok" only if it is HTTP 200 with a JSON-RPC "result" and
-- no tool-level "isError": true. Everything else counts as "bad", so a server
-- that answers errors fast cannot post a high score: run.py reports ok
-- replies per second, and the bad count beside it.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local headers = {}
  for i = 2, #args do
    local name, value = args[i]:match("^([^:]+):%s*(.*)$")
    headers[name] = value
  end
  -- Built once per thread: request() is on the hot path of the load generator.
  fixed_request = wrk.format("POST", nil, headers, args[1])
  ok = 0
  bad = 0
end

function request()
  return fixed_request
end

function response(status, headers, body)
  if status == 200
      and body:find('"result"%s*:')
      and not body:find('"isError"%s*:%s*true') then
    ok = ok + 1
  else
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local ok_total, bad_total = 0, 0
  for _, thread in ipairs(threads) do
    ok_total = ok_total + thread:get("ok")
    bad_total = bad_total + thread:get("bad")
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"duration_us":%d,"requests":%d,"ok":%d,"bad":%d,' ..
    '"socket_errors":%d,"timeouts":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.duration, summary.requests, ok_total, bad_total,
    e.connect + e.read + e.write, e.timeout,
    latency:percentile(50.0), latency:percentile(99.0), latency.max))
end
