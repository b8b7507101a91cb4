"""A real ``redis-server`` for tests: started on 127.0.0.1 and a free port, stopped (and restartable) at will.

    with running_redis() as redis:
        redis.url        # "redis://127.0.0.1:<port>"
        redis.stop()     # as if the cache went away (the port stays reserved for this server)
        redis.start()    # back, empty, on the same port

The binary is Debian's ``redis-server`` package, which ``.ci/run`` installs; nothing here fakes Redis.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

STARTUP_TIMEOUT_S = 10.0
_CANDIDATES = ("/usr/bin/redis-server", "/usr/sbin/redis-server", "/usr/local/bin/redis-server")


def redis_server_binary() -> str:
    found = shutil.which("redis-server") or next((path for path in _CANDIDATES if Path(path).is_file()), None)
    if found is None:
        raise RuntimeError(
            "redis-server is not installed; the rate-limit tests run against a real one: "
            "apt-get install redis-server (as .ci/run does)"
        )
    return found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    def __init__(self, binary: str, port: int) -> None:
        self._binary = binary
        self.port = port
        self.url = f"redis://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self._binary,
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--save", "",
                "--appendonly", "no",
                "--protected-mode", "no",
            ],  # fmt: skip
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with code {self.process.returncode} on port {self.port}")
            if self.ping():
                return
            time.sleep(0.02)
        raise RuntimeError(f"redis-server on port {self.port} did not answer PING")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


@contextlib.contextmanager
def running_redis() -> Iterator[RedisServer]:
    server = RedisServer(redis_server_binary(), _free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()
