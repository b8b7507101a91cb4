"""The verification client (`python -m app.client URL`) against real servers.

Two server processes share one handle key ring but have different instance
ids, behind a per-request round-robin front end (App Service with client
affinity off). The client must report both instances and keep the tally
right as calls alternate between them; against anything broken it must exit
non-zero and say why.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

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


def run_client(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.client", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_reports_both_instances_and_the_right_tally(fleet):
    result = run_client(fleet.mcp_url, "--calls", "10", "--tally-steps", "6", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["error"] is None
    assert report["instances"] == {"instance-a": 5, "instance-b": 5}
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
    assert "whoami x6: 2 serving instance(s)" in out
    assert "instance-a" in out and "instance-b" in out
    assert "ttlMs=" in out and "cacheScope=" in out
    assert out.rstrip().endswith("OK: every check passed")


def test_legacy_clients_verify_the_same_way(fleet):
    result = run_client(fleet.mcp_url, "--mode", "legacy", "--calls", "4", "--tally-steps", "3", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["protocol_version"] != "2026-07-28"
    assert report["instances"] == {"instance-a": 2, "instance-b": 2}


def test_instances_that_do_not_share_the_key_ring_fail_the_tally():
    # The bug the tally check exists for: state that does not travel between instances.
    with _fleet(keys_b="k2:" + "b" * 40) as front:
        result = run_client(front.mcp_url, "--calls", "2", "--tally-steps", "4")
    assert result.returncode == 1
    assert "FAILED: tool 'tally' returned an error result" in result.stdout
    assert "OK: every check passed" not in result.stdout


class _Broken(BaseHTTPRequestHandler):
    """Answers every POST with ``self.server.answer``: (status, content type, body); in the body
    ``{id}`` becomes the request's JSON-RPC id, so the client takes it as the answer to its request."""

    def do_POST(self) -> None:
        request = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, content_type, body = self.server.answer
        with contextlib.suppress(ValueError, AttributeError):
            body = body.replace(b"{id}", json.dumps(json.loads(request).get("id")).encode())
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_DELETE = do_POST

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def _broken_server(answer: tuple[int, str, bytes]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Broken)
    server.answer = answer
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/mcp"
    finally:
        server.shutdown()
        server.server_close()


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
    with _broken_server(answer) as url:
        result = run_client(url, "--timeout", "5")
    assert result.returncode == 1, result.stdout + result.stderr
    assert reason in result.stdout
    assert "OK: every check passed" not in result.stdout


def test_an_unreachable_server_exits_non_zero():
    with _broken_server((200, "application/json", b"{}")) as url:
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
    ],
)
def test_bad_usage_exits_2_naming_the_input(args, named):
    result = run_client(*args)
    assert result.returncode == 2
    assert named in result.stderr
