// k6 load test: MCP 2026-07-28 tools/call against a deployed site.
//
//   k6 run -e BASE_URL=https://<site>.azurewebsites.net loadtest/k6.js
//   k6 run -e BASE_URL=... -e VUS=100 -e DURATION=5m loadtest/k6.js
//
// Same requests and checks as loadtest/locustfile.py: one JSON-RPC request per
// POST to /mcp with the MCP-Protocol-Version, Mcp-Method and Mcp-Name headers
// and params._meta; a response passes when it is HTTP 200, a JSON-RPC result
// for its id, resultType "complete" and not isError. Hits per serving instance
// (the X-Served-By response header) are counted in the `served_by` counter,
// tagged by instance. k6 keeps only the tagged sub-metrics that thresholds
// name, so pass the instance ids to see per-instance counts in the summary
// (python -m app.client prints them):
//
//   k6 run -e BASE_URL=... -e INSTANCES=<id1>,<id2> loadtest/k6.js
//
// or keep every data point and count them afterwards:
//
//   k6 run -e BASE_URL=... --out json=k6.json loadtest/k6.js
//   jq -r 'select(.metric=="served_by" and .type=="Point") | .data.tags.instance' k6.json | sort | uniq -c

import http from 'k6/http';
import { check, fail } from 'k6';
import { Counter } from 'k6/metrics';

const PROTOCOL_VERSION = '2026-07-28';
const BASE_URL = (__ENV.BASE_URL || '').replace(/\/+$/, '');
const MCP_URL = BASE_URL + (__ENV.MCP_PATH || '/mcp');

const servedBy = new Counter('served_by');
const tallyWrong = new Counter('tally_wrong_total');

function positiveInteger(name, fallback) {
  const raw = __ENV[name] === undefined ? fallback : __ENV[name];
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1) {
    throw new Error(name + '=' + JSON.stringify(raw) + ': expected a whole number of at least 1');
  }
  return value;
}

export const options = {
  vus: positiveInteger('VUS', '20'),
  duration: __ENV.DURATION || '1m',
  thresholds: {
    checks: ['rate==1.0'],
    http_req_failed: ['rate==0'],
    tally_wrong_total: ['count==0'],
  },
  summaryTrendStats: ['avg', 'p(50)', 'p(95)', 'p(99)', 'max'],
};

for (const instance of (__ENV.INSTANCES || '').split(',').filter(Boolean)) {
  options.thresholds['served_by{instance:' + instance + '}'] = ['count>=0'];
}

export function setup() {
  if (!BASE_URL) {
    fail('set BASE_URL, e.g. k6 run -e BASE_URL=https://<site>.azurewebsites.net loadtest/k6.js');
  }
}

let nextId = 1;

function toolsCall(tool, args) {
  const id = nextId++;
  const body = JSON.stringify({
    jsonrpc: '2.0',
    id: id,
    method: 'tools/call',
    params: {
      name: tool,
      arguments: args,
      _meta: {
        'io.modelcontextprotocol/protocolVersion': PROTOCOL_VERSION,
        'io.modelcontextprotocol/clientCapabilities': {},
        'io.modelcontextprotocol/clientInfo': { name: 'mcpscale-k6', version: '1.0' },
      },
    },
  });
  const response = http.post(MCP_URL, body, {
    headers: {
      'Content-Type': 'application/json',
      Accept: 'application/json, text/event-stream',
      'MCP-Protocol-Version': PROTOCOL_VERSION,
      'Mcp-Method': 'tools/call',
      'Mcp-Name': tool,
    },
    tags: { name: 'tools/call ' + tool },
  });
  const instance = response.headers['X-Served-By'] || '(no X-Served-By header)';
  servedBy.add(1, { instance: instance });

  let message = null;
  try {
    message = response.json();
  } catch (e) {
    message = null;
  }
  const result = message && message.result;
  const ok = check(response, {
    'HTTP 200': (r) => r.status === 200,
    'JSON-RPC result for this id': () => message !== null && message.id === id && !message.error,
    'resultType complete': () => Boolean(result) && result.resultType === 'complete',
    'not a tool error': () => Boolean(result) && !result.isError,
  });
  return ok ? result.structuredContent || {} : null;
}

// Per-VU tally chain: the handle travels from call to call; the total must hold.
let tallyHandle = null;
let tallyExpected = 0;

export default function () {
  toolsCall('whoami', {});
  toolsCall('echo', { text: 'hello ' + __VU + '-' + __ITER });

  const amount = 1 + Math.floor(Math.random() * 9);
  const args = tallyHandle ? { add: amount, handle: tallyHandle } : { add: amount };
  const tally = toolsCall('tally', args);
  if (tally === null) {
    tallyHandle = null;
    tallyExpected = 0;
    return;
  }
  tallyExpected += amount;
  if (tally.total !== tallyExpected) {
    tallyWrong.add(1);
    tallyHandle = null;
    tallyExpected = 0;
    return;
  }
  tallyHandle = tally.handle;
}

export function handleSummary(data) {
  const lines = ['Hits per serving instance (X-Served-By):'];
  const total = data.metrics.served_by ? data.metrics.served_by.values.count : 0;
  for (const [name, metric] of Object.entries(data.metrics)) {
    const match = /^served_by\{instance:(.*)\}$/.exec(name);
    if (match) {
      const count = metric.values.count;
      lines.push('  ' + match[1] + '  ' + count + '  ' + ((100 * count) / total).toFixed(1) + '%');
    }
  }
  if (lines.length === 1) {
    lines.push('  ' + total + ' responses; pass -e INSTANCES=<id1>,<id2> for per-instance counts');
  }
  return { stdout: lines.join('\n') + '\n' };
}
