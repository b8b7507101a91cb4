"""A local stand-in for Azure Front Door's origin group: health probes decide which regions get traffic.

It probes every origin's ``/health`` the way components/front_door.py
configures the origin group: one probe per origin every ``interval_s``; an
origin is healthy while at least ``successful_samples_required`` of its last
``sample_size`` probes succeeded. Requests go to the healthy origins whose
last probe was within ``additional_latency_s`` of the fastest, in turn
(latency-based routing with equal priority and weight); with none healthy
the stand-in answers 503. A request to an origin that fails is not retried on
another one: the client sees 502, as it would see Front Door's error.

    settings = ProbeSettings.of_origin_group(time_scale=1 / 30)
    with front_door({"westeurope": url_a, "northeurope": url_b}, settings) as door:
        door.mcp_url            # "http://127.0.0.1:<port>/mcp"
        door.routed             # [(monotonic time, region, HTTP status), ...]
        door.unhealthy_since    # region -> (monotonic time, probe round) it left rotation

Real Front Door probes from every edge and each edge decides for itself;
one prober is the single-edge case, which is what one client sees.
"""

from __future__ import annotations

import collections
import contextlib
import http.client
import itertools
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from components import front_door as fd
from tests.app.round_robin import HOP_BY_HOP


@dataclass(frozen=True)
class ProbeSettings:
    interval_s: float
    sample_size: int
    successful_samples_required: int
    additional_latency_s: float

    @classmethod
    def of_origin_group(cls, time_scale: float) -> ProbeSettings:
        """The origin group's settings (components/front_door.py), every duration multiplied by ``time_scale``."""
        return cls(
            interval_s=fd.PROBE_INTERVAL_S * time_scale,
            sample_size=fd.SAMPLE_SIZE,
            successful_samples_required=fd.SUCCESSFUL_SAMPLES_REQUIRED,
            additional_latency_s=fd.ADDITIONAL_LATENCY_MS / 1000,
        )

    @property
    def failed_probes_to_leave(self) -> int:
        """Consecutive failed probes after which a healthy origin is out of rotation."""
        return self.sample_size - self.successful_samples_required + 1

    @property
    def failover_bound_s(self) -> float:
        """Longest time from an origin's death to its last request: that many probe intervals."""
        return self.interval_s * self.failed_probes_to_leave


@dataclass
class _Origin:
    region: str
    host: str
    port: int
    samples: collections.deque[bool]
    latency_s: float = 0.0


@dataclass
class FrontDoorStandIn:
    url: str
    mcp_url: str
    routed: list[tuple[float, str, int]] = field(default_factory=list)
    unhealthy_since: dict[str, tuple[float, int]] = field(default_factory=dict)
    probe_rounds: int = 0


class _Prober:
    def __init__(self, origins: list[_Origin], settings: ProbeSettings, door: FrontDoorStandIn) -> None:
        self.origins = origins
        self.settings = settings
        self.door = door
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.turn = itertools.count()

    def healthy(self, origin: _Origin) -> bool:
        return sum(origin.samples) >= self.settings.successful_samples_required

    def probe_once(self) -> None:
        for origin in self.origins:
            started = time.monotonic()
            try:
                connection = http.client.HTTPConnection(origin.host, origin.port, timeout=self.settings.interval_s)
                connection.request("GET", "/health")
                ok = connection.getresponse().status == 200
                connection.close()
            except OSError:
                ok = False
            with self.lock:
                was_healthy = self.healthy(origin)
                origin.samples.append(ok)
                if ok:
                    origin.latency_s = time.monotonic() - started
                if was_healthy and not self.healthy(origin):
                    self.door.unhealthy_since[origin.region] = (time.monotonic(), self.door.probe_rounds + 1)
        with self.lock:
            self.door.probe_rounds += 1

    def run(self) -> None:
        next_round = time.monotonic()
        while not self.stop.is_set():
            self.probe_once()
            next_round += self.settings.interval_s
            self.stop.wait(max(0.0, next_round - time.monotonic()))

    def pick(self) -> _Origin | None:
        with self.lock:
            healthy = [o for o in self.origins if self.healthy(o)]
            if not healthy:
                return None
            fastest = min(o.latency_s for o in healthy)
            bucket = [o for o in healthy if o.latency_s <= fastest + self.settings.additional_latency_s]
            return bucket[next(self.turn) % len(bucket)]


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        """A client hanging up on its keep-alive connection is not an error of the stand-in."""


@contextlib.contextmanager
def front_door(origins: Mapping[str, str], settings: ProbeSettings) -> Iterator[FrontDoorStandIn]:
    """Serve on 127.0.0.1 in front of ``origins`` (region -> base URL); every origin starts healthy."""
    targets = []
    for region, base in origins.items():
        parts = urlsplit(base)
        if parts.hostname != "127.0.0.1":
            raise ValueError(f"origin {region}: {base!r} is not on 127.0.0.1")
        samples = collections.deque([True] * settings.sample_size, maxlen=settings.sample_size)
        targets.append(_Origin(region, parts.hostname, parts.port or 80, samples))
    door = FrontDoorStandIn(url="", mcp_url="")
    prober = _Prober(targets, settings, door)

    class Forward(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self, status: int, payload: bytes, headers: list[tuple[str, str]]) -> None:
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _forward(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            origin = prober.pick()
            if origin is None:
                self._answer(503, b"no healthy origin", [])
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP | {"host"}}
            try:
                upstream = http.client.HTTPConnection(origin.host, origin.port, timeout=30)
                upstream.request(self.command, self.path, body=body or None, headers=headers)
                response = upstream.getresponse()
                payload = response.read()
                kept = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP | {"content-length"}]
                upstream.close()
            except (OSError, http.client.HTTPException):
                door.routed.append((time.monotonic(), origin.region, 502))
                self._answer(502, b"origin unreachable", [])
                return
            door.routed.append((time.monotonic(), origin.region, response.status))
            self._answer(response.status, payload, kept)

        do_GET = do_POST = do_DELETE = _forward

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

    server = _QuietServer(("127.0.0.1", 0), Forward)
    door.url = f"http://127.0.0.1:{server.server_address[1]}"
    door.mcp_url = door.url + "/mcp"
    threads = [threading.Thread(target=server.serve_forever, daemon=True), threading.Thread(target=prober.run)]
    for thread in threads:
        thread.start()
    try:
        yield door
    finally:
        prober.stop.set()
        server.shutdown()
        server.server_close()
        for thread in threads:
            thread.join(timeout=5)
