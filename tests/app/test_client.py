"""The verification client (`python -m app.client URL`) against real servers.

Two server processes share one handle key ring but have different instance
ids, behind a per-request round-robin front end (App Service with client
affinity off). The client must report both instances and keep the tally
right as calls alternate between them. Against a team's own server (no
whoami, no tally) it must still verify and report the spread from the
X-Served-By header; against anything broken it must exit non-zero and say why.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.app import custom_server
from tests.app.broken_server import broken_server
from tests.app.round_robin import FrontEnd, round_robin
from tests.app.serving import running_server

ROOT = Path(__file__).resolve().parents[2]
SHARED_KEYS = "k1:" + "a" * 40


@contextlib.contextmanager
def _fleet(keys_a: str = SHARED_KEYS, keys_b: str = SHARED_KEYS) -> Iterator[FrontEnd]:
    with (
        running_server(env={"MCP_HANDLE_KEYS": keys_a, "WEBSITE_INSTANCE_ID": "instance-a"}) as a,
        running_server(env={"MCP_HANDLE_KEYS": keys_b, "WEBSITE_INSTANCE_ID": "instance-b"}) as b,
        round_robin([a.url, b.url]) as front,
    ):
        yield front


@pytest.fixture(scope="module")
def fleet() -> Iterator[FrontEnd]:
    with _fleet() as front:
        yield front


@pytest.fixture(scope="module")
def custom_fleet() -> Iterator[FrontEnd]:
    """Two instances of a team's own server (no whoami, no tally) behind the round-robin front end."""
    with (
        running_server(env={"WEBSITE_INSTANCE_ID": "acme-a"}, args=["--server", custom_server.SPEC]) as a,
        running_server(env={"WEBSITE_INSTANCE_ID": "acme-b"}, args=["--server", custom_server.SPEC]) as b,
        round_robin([a.url, b.url]) as front,
    ):
        yield front


def run_client(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.client", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_reports_both_instances_and_the_right_tally(fleet):
    result = run_client(fleet.mcp_url, "--calls", "10", "--tally-steps", "6", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["error"] is None
    assert report["probe"] == "whoami"
    assert report["served_by"] == report["instances"] == {"instance-a": 5, "instance-b": 5}
    assert [call["instance"] for call in report["calls"]] == [call["served_by"] for call in report["calls"]]
    assert report["tally_skipped"] is False
    assert report["tally_total"] == report["tally_expected"] > 0
    # Consecutive tally steps ran on different instances, and the total held.
    assert len(report["tally_instances"]) == 2
    served = [step["served_by"] for step in report["tally"]]
    assert all(served[i] != served[i + 1] for i in range(len(served) - 1))
    assert {"whoami", "tally"} <= set(report["tools"])
    assert report["protocol_version"] == "2026-07-28"
    assert report["tools_cache"]["cacheScope"] in ("public", "private")


def test_text_report_shows_the_distribution_and_cache_hints(fleet):
    result = run_client(fleet.url, "--calls", "6", "--tally-steps", "3")  # a bare site URL gets /mcp
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert f"connected to {fleet.mcp_url}" in out
    assert "whoami x6: 2 serving instance(s) by X-Served-By" in out
    assert "whoami x6: 2 serving instance(s) by whoami's instance_id" in out
    assert "instance-a" in out and "instance-b" in out
    assert "ttlMs=" in out and "cacheScope=" in out
    assert out.rstrip().endswith("OK: every check passed")


def test_legacy_clients_verify_the_same_way(fleet):
    result = run_client(fleet.mcp_url, "--mode", "legacy", "--calls", "4", "--tally-steps", "3", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["protocol_version"] != "2026-07-28"
    assert report["instances"] == {"instance-a": 2, "instance-b": 2}


def test_call_runs_the_spread_on_any_tool_with_its_arguments(fleet):
    result = run_client(fleet.mcp_url, "--call", "echo", '{"message": "grüße"}', "--calls", "4", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["probe"] == "echo"
    assert [call["value"]["message"] for call in report["calls"]] == ["grüße"] * 4
    assert report["served_by"] == {"instance-a": 2, "instance-b": 2}
    assert report["instances"] == {}  # only whoami reports an instance_id


def test_a_custom_server_without_whoami_or_tally_verifies_with_the_spread_from_x_served_by(custom_fleet):
    result = run_client(custom_fleet.mcp_url, "--calls", "6", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["server"]["name"] == "acme-tools"
    assert set(report["tools"]) == {"add", "shout"}
    assert report["probe"] == "tools/list"
    assert report["served_by"] == {"acme-a": 3, "acme-b": 3}
    assert report["tally_skipped"] is True and report["tally"] == []


def test_a_custom_servers_own_tool_is_called_with_call(custom_fleet):
    result = run_client(custom_fleet.mcp_url, "--call", "add", '{"a": 2, "b": 40}', "--calls", "4")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert 'add {"a": 2, "b": 40} -> {"result": 42}' in out
    assert "add x4: 2 serving instance(s) by X-Served-By" in out
    assert "tally: skipped, the server has no 'tally' tool" in out
    assert out.rstrip().endswith("OK: every check passed")


@pytest.mark.parametrize(
    ("call", "reason"),
    [
        (["whoami", "{}"], "FAILED: --call 'whoami': the server has no such tool (it offers ['add', 'shout'])"),
        (["add", '{"a": "two", "b": 1}'], "FAILED: tool 'add' returned an error result"),
    ],
    ids=["unknown-tool", "tool-error"],
)
def test_a_call_that_fails_exits_non_zero(custom_fleet, call, reason):
    result = run_client(custom_fleet.mcp_url, "--call", *call, "--calls", "2")
    assert result.returncode == 1, result.stdout + result.stderr
    assert reason in result.stdout


def test_instances_that_do_not_share_the_key_ring_fail_the_tally():
    # The bug the tally check exists for: state that does not travel between instances.
    with _fleet(keys_b="k2:" + "b" * 40) as front:
        result = run_client(front.mcp_url, "--calls", "2", "--tally-steps", "4")
    assert result.returncode == 1
    assert "FAILED: tool 'tally' returned an error result" in result.stdout
    assert "OK: every check passed" not in result.stdout


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ((200, "application/json", b"<html>not json-rpc</html>"), "protocol error -32700"),
        ((200, "application/json", b'{"jsonrpc": "2.0", "id": {id}, "result": {"nonsense": true}}'), "FAILED"),
        (
            (200, "application/json", b'{"jsonrpc": "2.0", "id": {id}, "error": {"code": -32603, "message": "boom"}}'),
            "boom",
        ),
        ((500, "text/html", b"<h1>Application Error</h1>"), "FAILED"),
        ((404, "text/plain", b"Not Found"), "FAILED"),
    ],
    ids=["garbage-body", "wrong-result", "internal-error", "http-500", "http-404"],
)
def test_a_broken_server_exits_non_zero(answer, reason):
    with broken_server(answer) as url:
        result = run_client(url, "--timeout", "5")
    assert result.returncode == 1, result.stdout + result.stderr
    assert reason in result.stdout
    assert "OK: every check passed" not in result.stdout


def test_an_unreachable_server_exits_non_zero():
    with broken_server((200, "application/json", b"{}")) as url:
        pass  # closed: nothing listens on that port any more
    result = run_client(url, "--timeout", "5")
    assert result.returncode == 1
    assert "FAILED: ConnectError" in result.stdout


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["ftp://example.test/mcp"], "URL must be http(s)://"),
        (["http://127.0.0.1:1/mcp", "--calls", "0"], "--calls: expected an integer from 1 to 10000, got 0"),
        (["http://127.0.0.1:1/mcp", "--timeout", "0"], "--timeout: expected seconds above 0"),
        (["http://127.0.0.1:1/mcp", "--header", "no-colon"], "--header: expected 'NAME: VALUE'"),
        (["http://127.0.0.1:1/mcp", "--call", "add", "[1, 2]"], "--call add: JSON must be an object of arguments"),
        (["http://127.0.0.1:1/mcp", "--call", "add", "{a: 1}"], "--call add: JSON must be an object of arguments"),
    ],
)
def test_bad_usage_exits_2_naming_the_input(args, named):
    result = run_client(*args)
    assert result.returncode == 2
    assert named in result.stderr
