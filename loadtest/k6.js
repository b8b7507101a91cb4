// k6 load test: MCP 2026-07-28 tools/call against any MCP server (a deployed site or a local one).
//
//   k6 run -e BASE_URL=https://<site>.azurewebsites.net loadtest/k6.js
//   k6 run -e BASE_URL=... -e VUS=100 -e DURATION=5m loadtest/k6.js
//   k6 run -e BASE_URL=... -e MCP_TOOL=echo -e MCP_ARGUMENTS='{"message": "hi"}' loadtest/k6.js
//
// Settings (-e NAME=VALUE):
//   BASE_URL       the site, e.g. https://<site>.azurewebsites.net (required)
//   MCP_PATH       the MCP endpoint's path (default /mcp)
//   MCP_TOOL       the tool every iteration calls (default whoami)
//   MCP_ARGUMENTS  its arguments, a JSON object (default {})
//   VUS, DURATION  virtual users (default 20) and how long (default 1m)
//
// Same requests and checks as loadtest/locustfile.py: one JSON-RPC request per
// POST with the MCP-Protocol-Version, Mcp-Method and Mcp-Name headers and
// params._meta; a response passes when it is HTTP 200, a JSON-RPC result for
// its id, resultType "complete" and not isError. setup() lists the tools: the
// run stops at once when MCP_TOOL is not among them, and where the server has
// a `tally` tool, a quarter of the iterations step a per-VU tally chain (the
// handle passed from call to call) whose total must hold wherever each call
// lands. The end-of-test summary counts the hits per serving instance from the
// X-Served-By response header.

import http from 'k6/http';
import { check, fail } from 'k6';
import { Counter } from 'k6/metrics';

const PROTOCOL_VERSION = '2026-07-28';
const BASE_URL = (__ENV.BASE_URL || '').replace(/\/+$/, '');
const MCP_URL = BASE_URL + (__ENV.MCP_PATH || '/mcp');
const TOOL = toolName('MCP_TOOL', __ENV.MCP_TOOL === undefined ? 'whoami' : __ENV.MCP_TOOL);
const ARGUMENTS = toolArguments('MCP_ARGUMENTS', __ENV.MCP_ARGUMENTS === undefined ? '{}' : __ENV.MCP_ARGUMENTS);
const TALLY_SHARE = 0.25;
// k6 keeps a tagged metric's per-tag counts only for thresholds named before the run, but it counts every
// check by name: so each serving instance gets a check of its own, which always passes.
const SERVED_BY_CHECK = 'served by ';
const NO_HEADER = '(no X-Served-By header)';

const tallyWrong = new Counter('tally_wrong_total');

function positiveInteger(name, fallback) {
  const raw = __ENV[name] === undefined ? fallback : __ENV[name];
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1) {
    throw new Error(name + '=' + JSON.stringify(raw) + ': expected a whole number of at least 1');
  }
  return value;
}

function toolName(name, raw) {
  // The spec's tool-name characters; they also keep the Mcp-Name header plain ASCII.
  if (!/^[A-Za-z0-9_.-]{1,128}$/.test(raw)) {
    throw new Error(name + '=' + JSON.stringify(raw) + ': expected a tool name of 1 to 128 letters, digits, _ . -');
  }
  return raw;
}

function toolArguments(name, raw) {
  let value = null;
  try {
    value = JSON.parse(raw);
  } catch (e) {
    value = null;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new Error(name + '=' + JSON.stringify(raw) + ': expected a JSON object of the tool\'s arguments, e.g. {"message": "hi"}');
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
};

let nextId = 1;

// One 2026-07-28 request; returns its result after checking the response, or null when a check failed.
function mcpRequest(method, params, name) {
  const id = nextId++;
  const body = JSON.stringify({
    jsonrpc: '2.0',
    id: id,
    method: method,
    params: Object.assign({}, params, {
      _meta: {
        'io.modelcontextprotocol/protocolVersion': PROTOCOL_VERSION,
        'io.modelcontextprotocol/clientCapabilities': {},
        'io.modelcontextprotocol/clientInfo': { name: 'mcpscale-k6', version: '1.0' },
      },
    }),
  });
  const headers = {
    'Content-Type': 'application/json',
    Accept: 'application/json, text/event-stream',
    'MCP-Protocol-Version': PROTOCOL_VERSION,
    'Mcp-Method': method,
  };
  if (name) {
    headers['Mcp-Name'] = name;
  }
  const response = http.post(MCP_URL, body, { headers: headers, tags: { name: name ? method + ' ' + name : method } });
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
  check(response, { [SERVED_BY_CHECK + (response.headers['X-Served-By'] || NO_HEADER)]: () => true });
  return ok ? result : null;
}

export function setup() {
  if (!BASE_URL) {
    fail('set BASE_URL, e.g. k6 run -e BASE_URL=https://<site>.azurewebsites.net loadtest/k6.js');
  }
  const listing = mcpRequest('tools/list', {}, null);
  if (listing === null) {
    fail('tools/list at ' + MCP_URL + ' failed: is it an MCP endpoint?');
  }
  const tools = listing.tools.map((tool) => tool.name);
  if (!tools.includes(TOOL)) {
    fail('MCP_TOOL=' + JSON.stringify(TOOL) + ': the server has no such tool (it offers ' + tools.join(', ') + ')');
  }
  return { tally: tools.includes('tally') };
}

// Per-VU tally chain: the handle travels from call to call; the total must hold.
let tallyHandle = null;
let tallyExpected = 0;

function tallyStep() {
  const amount = 1 + Math.floor(Math.random() * 9);
  const args = tallyHandle ? { add: amount, handle: tallyHandle } : { add: amount };
  const result = mcpRequest('tools/call', { name: 'tally', arguments: args }, 'tally');
  const tally = result && result.structuredContent;
  if (tally && tally.total === tallyExpected + amount) {
    tallyExpected += amount;
    tallyHandle = tally.handle;
    return;
  }
  if (tally) {
    tallyWrong.add(1);
  }
  tallyHandle = null; // start a fresh chain
  tallyExpected = 0;
}

export default function (listed) {
  if (listed.tally && Math.random() < TALLY_SHARE) {
    tallyStep();
  } else {
    mcpRequest('tools/call', { name: TOOL, arguments: ARGUMENTS }, TOOL);
  }
}

// The checks of a group and of the groups in it (setup() has a group of its own).
function everyCheck(group) {
  return group.checks.concat(...group.groups.map(everyCheck));
}

export function handleSummary(data) {
  if (!data.metrics.http_reqs) {
    return { stdout: 'No request was sent.\n' };
  }
  const hits = {};
  for (const c of everyCheck(data.root_group).filter((c) => c.name.startsWith(SERVED_BY_CHECK))) {
    const instance = c.name.slice(SERVED_BY_CHECK.length);
    hits[instance] = (hits[instance] || 0) + c.passes;
  }
  const total = Object.values(hits).reduce((sum, count) => sum + count, 0);
  const checks = data.metrics.checks.values;
  const duration = data.metrics.http_req_duration.values;
  const lines = [
    'MCP ' + TOOL + ' ' + JSON.stringify(ARGUMENTS) + ' at ' + MCP_URL + ': ' + data.metrics.http_reqs.values.count +
      ' requests, checks ' + (checks.passes - total) + ' passed, ' + checks.fails + ' failed, http_req_duration avg ' +
      duration.avg.toFixed(2) + ' ms, p(95) ' + duration['p(95)'].toFixed(2) + ' ms',
    'Hits per serving instance (X-Served-By):',
  ];
  for (const [instance, count] of Object.entries(hits).sort((a, b) => b[1] - a[1])) {
    lines.push('  ' + instance + '  ' + count + '  ' + ((100 * count) / total).toFixed(1) + '%');
  }
  return { stdout: lines.join('\n') + '\n' };
}
