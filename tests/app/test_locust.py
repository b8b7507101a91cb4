"""The locust load test, headless for a few seconds against two local instances.

Run through a per-request round-robin front end, for the demo and for a
team's own server without whoami or tally (MCP_TOOL / MCP_ARGUMENTS naming
its tool), every request must pass the locustfile's checks (HTTP 200,
JSON-RPC result, resultType complete, no tool error, tally totals right), and
the per-instance report must name both instances, from X-Served-By, with
counts that add up to the requests sent. Against a broken endpoint, or a tool
the server does not have, locust must exit non-zero.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.app import custom_server
from tests.app.broken_server import broken_server
from tests.app.round_robin import round_robin
from tests.app.serving import running_server

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = ROOT / "loadtest" / "locustfile.py"
KEYS = "k1:" + "c" * 40
ROW = re.compile(r"^\s+(\S.*?)\s+(\d+)\s+[\d.]+%$")


def run_locust(host: str, out: Path, seconds: int = 3, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable, "-m", "locust",
            "-f", str(LOCUSTFILE),
            "--host", host,
            "--headless", "--users", "4", "--spawn-rate", "4", "--run-time", f"{seconds}s",
            "--only-summary", "--json-file", str(out / "stats"),
        ],
        cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("locust")
    with (
        running_server(env={"MCP_HANDLE_KEYS": KEYS, "WEBSITE_INSTANCE_ID": "instance-a"}) as a,
        running_server(env={"MCP_HANDLE_KEYS": KEYS, "WEBSITE_INSTANCE_ID": "instance-b"}) as b,
        round_robin([a.url, b.url]) as front,
    ):
        return run_locust(front.url, out), out


@pytest.fixture(scope="module")
def custom_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("locust")
    with (
        running_server(env={"WEBSITE_INSTANCE_ID": "acme-a"}, args=["--server", custom_server.SPEC]) as a,
        running_server(env={"WEBSITE_INSTANCE_ID": "acme-b"}, args=["--server", custom_server.SPEC]) as b,
        round_robin([a.url, b.url]) as front,
    ):
        return run_locust(front.url, out, MCP_TOOL="shout", MCP_ARGUMENTS='{"text": "hi"}'), out


RUNS = {"demo_run": {"instance-a", "instance-b"}, "custom_run": {"acme-a", "acme-b"}}


def _stats(out: Path) -> dict[str, dict]:
    """Locust's final statistics per request name (``--json-file``)."""
    return {entry["name"]: entry for entry in json.loads((out / "stats.json").read_text())}


def _served_by(stdout: str) -> dict[str, int]:
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Hits per serving instance (X-Served-By)"))
    counts = {}
    for line in lines[start + 1 :]:
        match = ROW.match(line)
        if not match:
            break
        counts[match.group(1)] = int(match.group(2))
    return counts


@pytest.mark.parametrize("run", RUNS)
def test_zero_failures(request, run):
    result, out = request.getfixturevalue(run)
    assert result.returncode == 0, result.stdout + result.stderr
    stats = _stats(out)
    assert sum(entry["num_requests"] for entry in stats.values()) > 20
    failures = {name: entry["num_failures"] for name, entry in stats.items() if entry["num_failures"]}
    assert failures == {}, result.stdout


def test_the_demo_run_drives_whoami_and_a_tally_chain(demo_run):
    _, out = demo_run
    stats = _stats(out)
    assert set(stats) == {"tools/list", "tools/call whoami", "tools/call tally"}
    assert stats["tools/list"]["num_requests"] == 4  # once per user
    assert stats["tools/call tally"]["num_requests"] > 0


def test_the_custom_run_drives_the_chosen_tool_and_no_tally(custom_run):
    _, out = custom_run
    assert set(_stats(out)) == {"tools/list", "tools/call shout"}


@pytest.mark.parametrize("run", RUNS)
def test_hits_per_instance_are_printed_for_both_instances(request, run):
    result, out = request.getfixturevalue(run)
    counts = _served_by(result.stdout)
    assert set(counts) == RUNS[run], result.stdout  # the X-Served-By values
    requests = sum(entry["num_requests"] for entry in _stats(out).values())
    assert sum(counts.values()) == requests
    # Round robin per request: the two instances got (almost) the same share.
    assert abs(counts[max(counts, key=counts.get)] - counts[min(counts, key=counts.get)]) <= 4


def test_a_tool_the_server_does_not_have_fails_the_run_naming_it(tmp_path):
    with running_server(args=["--server", custom_server.SPEC]) as acme:
        result = run_locust(acme.url, tmp_path, seconds=2)  # MCP_TOOL defaults to whoami
    assert result.returncode == 1
    assert "MCP_TOOL='whoami': the server has no such tool (it offers ['add', 'shout'])" in result.stderr


def test_a_broken_server_fails_the_run(tmp_path):
    with broken_server((500, "text/html", b"<h1>Application Error</h1>")) as url:
        result = run_locust(url.removesuffix("/mcp"), tmp_path, seconds=2)
    assert result.returncode == 1
    assert _stats(tmp_path)["tools/call whoami"]["num_failures"] > 0


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("MCP_WAIT_MAX", "soon", "MCP_WAIT_MAX='soon': expected seconds from 0 to 60"),
        ("MCP_PATH", "mcp", "MCP_PATH='mcp'"),
        ("MCP_TOOL", "two words", "MCP_TOOL='two words': expected a tool name of 1 to 128 letters"),
        ("MCP_ARGUMENTS", "[1]", "MCP_ARGUMENTS='[1]': expected a JSON object of the tool's arguments"),
    ],
)
def test_bad_settings_are_named(variable, value, named):
    result = subprocess.run(
        [sys.executable, "-c", f"import runpy; runpy.run_path({str(LOCUSTFILE)!r})"],
        cwd=ROOT,
        env={**os.environ, variable: value},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert named in result.stderr
