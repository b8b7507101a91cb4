"""Run the real server (``python -m app``) in a subprocess for tests.

Other areas' tests reuse this (load tests, telemetry, packaging), so its
contract is fixed by the team brief::

    with running_server(env={"MCP_SLOT_NAME": "staging"}, workers=1) as server:
        server.url       # "http://127.0.0.1:<port>"
        server.mcp_url   # server.url + "/mcp"
        server.process   # the subprocess.Popen

The server binds port 0 (the kernel picks a free port, so there is no
pick-then-bind race) and the port is read from uvicorn's start-up line. The
context manager returns once ``GET /health`` answers 200, and on exit sends
SIGTERM (a graceful uvicorn shutdown) and waits for the process.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
_LISTENING = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")
STARTUP_TIMEOUT_S = 30.0


@dataclass
class ServerProcess:
    url: str
    mcp_url: str
    process: subprocess.Popen[str]
    _lines: list[str] = field(default_factory=list, repr=False)

    def output(self) -> str:
        """Everything the server has written to stdout/stderr so far (merged)."""
        return "".join(self._lines)


def _drain(stream, lines: list[str], port_found: threading.Event, port_box: list[int]) -> None:
    for line in stream:
        lines.append(line)
        if not port_found.is_set() and (match := _LISTENING.search(line)):
            port_box.append(int(match.group(1)))
            port_found.set()
    port_found.set()  # EOF: wake the waiter so it sees the process died


@contextlib.contextmanager
def running_server(
    env: Mapping[str, str | None] | None = None,
    workers: int = 1,
    args: list[str] | None = None,
    server: list[str] | None = None,
) -> Iterator[ServerProcess]:
    """Start ``python -m app`` on 127.0.0.1 and a free port; yield once /health answers.

    ``env`` overrides the inherited environment (a value of ``None`` removes
    the variable). ``args`` are extra CLI arguments for ``python -m app``.
    ``server`` replaces ``-m app`` with another module and its arguments
    (e.g. ``["-m", "uvicorn", "app.main:app"]``); it must take ``--host``,
    ``--port`` and ``--workers`` and log uvicorn's start-up line.
    """
    child_env = dict(os.environ)
    child_env["PYTHONUNBUFFERED"] = "1"
    for key, value in (env or {}).items():
        if value is None:
            child_env.pop(key, None)
        else:
            child_env[key] = value
    command = [
        sys.executable,
        *(server or ["-m", "app"]),
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--workers",
        str(workers),
    ]
    process = subprocess.Popen(
        command + list(args or []),
        cwd=PROJECT_ROOT,
        env=child_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    port_found = threading.Event()
    port_box: list[int] = []
    threading.Thread(target=_drain, args=(process.stdout, lines, port_found, port_box), daemon=True).start()
    try:
        if not port_found.wait(STARTUP_TIMEOUT_S) or not port_box:
            raise RuntimeError(f"server did not start (exit code {process.poll()}):\n{''.join(lines)}")
        url = f"http://127.0.0.1:{port_box[0]}"
        _wait_healthy(url, process, lines)
        yield ServerProcess(url=url, mcp_url=url + "/mcp", process=process, _lines=lines)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def stop_process_group(process: subprocess.Popen, timeout: float) -> None:
    """SIGTERM the process group ``process`` leads (a server started with ``start_new_session`` and everything it
    spawned), then SIGKILL it if it has not exited after ``timeout`` seconds."""
    with contextlib.suppress(ProcessLookupError):  # already gone, e.g. it failed to start
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _wait_healthy(url: str, process: subprocess.Popen[str], lines: list[str]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with code {process.returncode}:\n{''.join(lines)}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"server at {url} never became healthy:\n{''.join(lines)}")


def sdk_app(server, **options):
    """``server`` on the SDK's own Streamable HTTP transport (stateless, ``options`` as
    ``streamable_http_app`` takes them), plus the ``/health`` that `running_server` waits for."""
    from starlette.responses import JSONResponse

    @server.custom_route("/health", methods=["GET"])
    async def health(_):
        return JSONResponse({"status": "ok"})

    return server.streamable_http_app(stateless_http=True, **options)
