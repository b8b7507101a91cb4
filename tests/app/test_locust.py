"""The locust load test, headless for a few seconds against two local instances.

Run through a per-request round-robin front end, every request must pass the
locustfile's checks (HTTP 200, JSON-RPC result, resultType complete, no tool
error, tally totals right), and the per-instance report must name both
instances with counts that add up to the requests sent.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.app.round_robin import round_robin
from tests.app.serving import running_server

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = ROOT / "loadtest" / "locustfile.py"
KEYS = "k1:" + "c" * 40
ROW = re.compile(r"^\s+(\S.*?)\s+(\d+)\s+[\d.]+%$")


@pytest.fixture(scope="module")
def locust_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("locust")
    with (
        running_server(env={"MCP_HANDLE_KEYS": KEYS, "WEBSITE_INSTANCE_ID": "instance-a"}) as a,
        running_server(env={"MCP_HANDLE_KEYS": KEYS, "WEBSITE_INSTANCE_ID": "instance-b"}) as b,
        round_robin([a.url, b.url]) as front,
    ):
        result = subprocess.run(
            [
                sys.executable, "-m", "locust",
                "-f", str(LOCUSTFILE),
                "--host", front.url,
                "--headless", "--users", "4", "--spawn-rate", "4", "--run-time", "5s",
                "--only-summary", "--json-file", str(out / "stats"),
            ],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    return result, out


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


def test_zero_failures(locust_run):
    result, out = locust_run
    assert result.returncode == 0, result.stdout + result.stderr
    stats = _stats(out)
    assert sum(entry["num_requests"] for entry in stats.values()) > 20
    failures = {name: entry["num_failures"] for name, entry in stats.items() if entry["num_failures"]}
    assert failures == {}, result.stdout


def test_every_tool_was_driven(locust_run):
    _, out = locust_run
    stats = _stats(out)
    for tool in ("whoami", "echo", "tally"):
        assert stats[f"tools/call {tool}"]["num_requests"] > 0, tool


def test_hits_per_instance_are_printed_for_both_instances(locust_run):
    result, out = locust_run
    counts = _served_by(result.stdout)
    assert len(counts) == 2, result.stdout
    assert all(count > 0 for count in counts.values())
    requests = sum(entry["num_requests"] for name, entry in _stats(out).items() if name.startswith("tools/call"))
    assert sum(counts.values()) == requests
    # Round robin per request: the two instances got (almost) the same share.
    assert abs(counts[max(counts, key=counts.get)] - counts[min(counts, key=counts.get)]) <= 4


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("MCP_WAIT_MAX", "soon", "MCP_WAIT_MAX='soon': expected seconds from 0 to 60"),
        ("MCP_PATH", "mcp", "MCP_PATH='mcp'"),
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
