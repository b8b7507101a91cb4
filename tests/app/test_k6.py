"""The k6 script: valid ES module JavaScript, and correct against a real server.

k6 itself is a Go binary we do not install here. Instead Node 22 (installed by
tests/npm_tools.py) first parses the script as an ES module (`node --check`),
then runs its real `setup` and default function for a few iterations against
two local instances behind a round-robin front end, with small stand-ins for
the three k6 modules it imports (`k6`, `k6/http`, `k6/metrics`): `http.post`
does a real HTTP request, `check` records each named check, `Counter.add`
records tagged values. So the headers, `_meta`, id matching, checks, tally
chain and per-instance counting of the script are all exercised for real.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.app.round_robin import round_robin
from tests.app.serving import running_server
from tests.npm_tools import node22

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "loadtest" / "k6.js"
KEYS = "k1:" + "d" * 40
ITERATIONS = 4

K6_STUBS = {
    "package.json": json.dumps(
        {
            "name": "k6",
            "type": "module",
            "exports": {".": "./index.js", "./http": "./http.js", "./metrics": "./metrics.js"},
        }
    ),
    "index.js": """
export function check(value, checks) {
  let all = true;
  for (const [name, predicate] of Object.entries(checks)) {
    const ok = Boolean(predicate(value));
    globalThis.__k6.checks.push({ name, ok });
    all = all && ok;
  }
  return all;
}
export function fail(message) { throw new Error('k6 fail: ' + message); }
""",
    # k6's http.post is synchronous; a child Node process does the fetch so this one can block on it.
    "http.js": """
import { execFileSync } from 'node:child_process';
const FETCH = `let input = '';
process.stdin.on('data', (d) => (input += d)).on('end', async () => {
  const r = JSON.parse(input);
  const res = await fetch(r.url, { method: 'POST', body: r.body, headers: r.headers });
  const headers = {};
  // k6 gives header names in Go's canonical form (X-Served-By).
  res.headers.forEach((v, k) => { headers[k.split('-').map((w) => w[0].toUpperCase() + w.slice(1)).join('-')] = v; });
  process.stdout.write(JSON.stringify({ status: res.status, headers, body: await res.text() }));
});`;
export default {
  post(url, body, params) {
    globalThis.__k6.requests.push({ url, headers: params.headers, body: JSON.parse(body), tags: params.tags });
    const r = JSON.parse(execFileSync(process.execPath, ['-e', FETCH], { input: JSON.stringify({ url, body, headers: params.headers }) }));
    return { status: r.status, headers: r.headers, body: r.body, json() { return JSON.parse(r.body); } };
  },
};
""",
    "metrics.js": """
export class Counter {
  constructor(name) { this.name = name; globalThis.__k6.counters[name] = []; }
  add(value, tags) { globalThis.__k6.counters[this.name].push({ value, tags: tags || {} }); }
}
""",
}

RUNNER = """
import { pathToFileURL } from 'node:url';
globalThis.__k6 = { checks: [], requests: [], counters: {} };
globalThis.__ENV = { BASE_URL: process.argv[3], INSTANCES: 'instance-a' };
globalThis.__VU = 1;
globalThis.__ITER = 0;
const script = await import(pathToFileURL(process.argv[2]).href);
script.setup();
for (let i = 0; i < Number(process.argv[4]); i++) { globalThis.__ITER = i; script.default(); }
// The end-of-test data k6 hands handleSummary: totals plus tagged sub-metrics.
const metrics = {};
for (const [name, points] of Object.entries(globalThis.__k6.counters)) {
  metrics[name] = { values: { count: points.reduce((s, p) => s + p.value, 0) } };
  for (const p of points) {
    for (const [tag, value] of Object.entries(p.tags)) {
      const key = name + '{' + tag + ':' + value + '}';
      metrics[key] = metrics[key] || { values: { count: 0 } };
      metrics[key].values.count += p.value;
    }
  }
}
const summary = script.handleSummary({ metrics });
process.stdout.write(JSON.stringify({ ...globalThis.__k6, options: script.options, summary: summary.stdout }));
"""


@pytest.fixture(scope="module")
def node() -> Path:
    return node22()


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Path:
    """The script next to stand-in k6 modules, in a folder where .js files are ES modules."""
    root = tmp_path_factory.mktemp("k6")
    (root / "package.json").write_text(json.dumps({"type": "module"}))
    shutil.copy(SCRIPT, root / "k6.js")
    stubs = root / "node_modules" / "k6"
    stubs.mkdir(parents=True)
    for name, text in K6_STUBS.items():
        (stubs / name).write_text(text)
    (root / "runner.mjs").write_text(RUNNER)
    return root


def test_the_script_parses_as_an_es_module(node, tmp_path):
    module = tmp_path / "k6.mjs"  # .mjs: Node parses it as an ES module, as k6 does
    shutil.copy(SCRIPT, module)
    result = subprocess.run([str(node), "--check", str(module)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_a_syntax_error_would_be_caught(node, tmp_path):
    broken = tmp_path / "broken.mjs"
    broken.write_text(SCRIPT.read_text().replace("export default function () {", "export default function ( {", 1))
    result = subprocess.run([str(node), "--check", str(broken)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0


@pytest.fixture(scope="module")
def k6_run(node, sandbox) -> dict:
    with (
        running_server(env={"MCP_HANDLE_KEYS": KEYS, "WEBSITE_INSTANCE_ID": "instance-a"}) as a,
        running_server(env={"MCP_HANDLE_KEYS": KEYS, "WEBSITE_INSTANCE_ID": "instance-b"}) as b,
        round_robin([a.url, b.url]) as front,
    ):
        result = subprocess.run(
            [str(node), str(sandbox / "runner.mjs"), str(sandbox / "k6.js"), front.url, str(ITERATIONS)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_every_check_passes_against_the_server(k6_run):
    checks = k6_run["checks"]
    assert len(checks) == ITERATIONS * 3 * 4  # three calls an iteration, four checks each
    assert [c for c in checks if not c["ok"]] == []
    assert k6_run["counters"]["tally_wrong_total"] == []


def test_requests_carry_the_2026_headers_and_meta(k6_run):
    for request in k6_run["requests"]:
        assert request["url"].endswith("/mcp")
        headers, body = request["headers"], request["body"]
        assert headers["MCP-Protocol-Version"] == "2026-07-28"
        assert headers["Mcp-Method"] == body["method"] == "tools/call"
        assert headers["Mcp-Name"] == body["params"]["name"]
        meta = body["params"]["_meta"]
        assert meta["io.modelcontextprotocol/protocolVersion"] == "2026-07-28"
        assert meta["io.modelcontextprotocol/clientCapabilities"] == {}
    tallies = [r["body"]["params"]["arguments"] for r in k6_run["requests"] if r["body"]["params"]["name"] == "tally"]
    assert "handle" not in tallies[0] and all("handle" in t for t in tallies[1:])  # one chain, handle carried


def test_hits_are_counted_per_serving_instance(k6_run):
    served = k6_run["counters"]["served_by"]
    assert len(served) == ITERATIONS * 3
    instances = {point["tags"]["instance"] for point in served}
    assert len(instances) == 2 and "(no X-Served-By header)" not in instances
    assert "served_by{instance:instance-a}" in k6_run["options"]["thresholds"]
    summary = k6_run["summary"].splitlines()
    assert summary[0] == "Hits per serving instance (X-Served-By):"
    listed = {line.split()[0] for line in summary[1:]}
    assert listed == instances


def test_a_bad_vus_value_is_named(node, sandbox):
    load = (
        "globalThis.__k6 = { checks: [], requests: [], counters: {} };"
        "globalThis.__ENV = { BASE_URL: 'http://127.0.0.1:9', VUS: 'many' };"
        f"await import({json.dumps((sandbox / 'k6.js').as_uri())});"
    )
    result = subprocess.run([str(node), "--input-type=module", "-e", load], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert 'VUS="many": expected a whole number of at least 1' in result.stderr
