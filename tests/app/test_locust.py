"""The locust load test, headless for a few seconds against two local instances.

Run through a per-request round-robin front end, every request must pass the
locustfile's checks (HTTP 200, JSON-RPC result, resultType complete, no tool
error, tally totals right), and the per-instance report must name both
instances with counts that add up to the requests sent.
"""

from __future__ import annotations

import csv
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
                "--only-summary", "--csv", str(out / "run"),
            ],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    return result, out


def _stats(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "run_stats.csv", newline="") as f:
        return {row["Name"]: row for row in csv.DictReader(f)}


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
    total = _stats(out)["Aggregated"]
    assert int(total["Request Count"]) > 20
    assert int(total["Failure Count"]) == 0, (out / "run_failures.csv").read_text()


def test_every_tool_was_driven(locust_run):
    _, out = locust_run
    stats = _stats(out)
    for tool in ("whoami", "echo", "tally"):
        assert int(stats[f"tools/call {tool}"]["Request Count"]) > 0, tool


def test_hits_per_instance_are_printed_for_both_instances(locust_run):
    result, out = locust_run
    counts = _served_by(result.stdout)
    assert len(counts) == 2, result.stdout
    assert all(count > 0 for count in counts.values())
    requests = sum(int(row["Request Count"]) for name, row in _stats(out).items() if name.startswith("tools/call"))
    assert sum(counts.values()) == requests
    # Round robin per request: the two instances got (almost) the same share.
    assert abs(counts[max(counts, key=counts.get)] - counts[min(counts, key=counts.get)]) <= 4
