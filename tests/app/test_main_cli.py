"""``python -m app``: the CLI contract, multiple workers, and graceful shutdown on SIGTERM."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from urllib.parse import urlparse

import httpx
import pytest

from app.__main__ import build_parser
from app.contract import GRACEFUL_TIMEOUT_SECONDS
from tests.app.conftest import modern_headers, modern_request
from tests.app.serving import PROJECT_ROOT, running_server


def test_defaults_follow_the_contract(monkeypatch):
    monkeypatch.delenv("PORT", raising=False)
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    monkeypatch.delenv("MCP_GRACEFUL_TIMEOUT", raising=False)
    args = build_parser().parse_args([])
    assert (args.host, args.port, args.workers) == ("127.0.0.1", 8000, 1)
    # The stack sizes App Service's stop time limit from the same value (tests/infra/test_site_config.py).
    assert args.graceful_timeout == GRACEFUL_TIMEOUT_SECONDS


def test_port_and_workers_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("PORT", "8181")
    monkeypatch.setenv("WEB_CONCURRENCY", "4")
    args = build_parser().parse_args(["--host", "0.0.0.0"])
    assert (args.host, args.port, args.workers) == ("0.0.0.0", 8181, 4)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--port", "70000"], "--port must be between 0 and 65535, got 70000"),
        (["--workers", "zero"], "--workers must be an integer"),
    ],
)
def test_bad_arguments_are_named(argv, needle):
    result = subprocess.run(
        [sys.executable, "-m", "app", *argv], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert needle in result.stderr


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"PORT": "70000"}, "PORT=70000 is out of range; allowed: 0..65535"),
        ({"WEB_CONCURRENCY": "0"}, "WEB_CONCURRENCY=0 is out of range; allowed: 1..64"),
        ({"MCP_GRACEFUL_TIMEOUT": "soon"}, "MCP_GRACEFUL_TIMEOUT='soon' is not an integer; allowed: 0..3600"),
        ({"MCP_READ_TIMEOUT_SECONDS": "0"}, "MCP_READ_TIMEOUT_SECONDS=0.0 is out of range; allowed: 0.1..3600"),
    ],
)
def test_option_defaults_from_the_environment_are_held_to_the_options_range(monkeypatch, env, needle):
    # argparse never applies ``type`` to a default, so the environment needs its own check.
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = subprocess.run([sys.executable, "-m", "app"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert needle in result.stderr


def test_bad_environment_stops_start_up_with_a_named_error():
    result = subprocess.run(
        [sys.executable, "-m", "app", "--port", "0"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", "MCP_HANDLE_KEYS": "k:short"},
    )
    assert result.returncode != 0
    assert "MCP_HANDLE_KEYS entry 1 (key id 'k'): secret is 5 characters" in result.stderr + result.stdout


def test_two_workers_serve_from_two_processes():
    with running_server(env={"MCP_HANDLE_KEYS": "k:shared-secret-0123456789"}, workers=2) as srv:
        pids = set()
        deadline = time.monotonic() + 20
        while len(pids) < 2 and time.monotonic() < deadline:
            with httpx.Client(base_url=srv.url) as client:  # a new connection each time
                pids.add(client.get("/").json()["pid"])
        assert len(pids) == 2 and srv.process.pid not in pids


def test_sigterm_lets_an_in_flight_request_finish():
    """SIGTERM during a slow call: the call still gets its answer, then the process shuts down cleanly."""
    body = json.dumps(modern_request("tools/call", {"name": "compute_primes", "arguments": {"limit": 80_000_000}}))
    headers = "".join(f"{k}: {v}\r\n" for k, v in modern_headers("tools/call", "compute_primes").items())
    request = f"POST /mcp HTTP/1.1\r\nHost: localhost\r\n{headers}Content-Length: {len(body)}\r\n\r\n{body}"
    with running_server(env={"MCP_PRIMES_LIMIT": "80000000"}) as srv:
        address = urlparse(srv.url)
        with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
            sock.sendall(request.encode())
            time.sleep(0.3)  # the request is being served (pool start-up plus a ~1 s sieve)
            srv.process.send_signal(signal.SIGTERM)
            reply = b""
            while b'"prime_count"' not in reply:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 200")
        assert b'"prime_count":4669382' in reply
        # uvicorn shuts down cleanly, then re-raises the signal so the exit status says why it stopped
        assert srv.process.wait(timeout=30) == -signal.SIGTERM
        assert "Application shutdown complete" in srv.output()
        assert "Finished server process" in srv.output()


def test_the_command_line_leaves_the_mcp_sdk_to_the_workers():
    """With --workers > 1 the supervisor runs only this module: it must not pay for the SDK (~40 MB)."""
    probe = "import sys, app.__main__; print(sorted(m for m in ('mcp', 'app.http_protocol', 'fastapi') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
