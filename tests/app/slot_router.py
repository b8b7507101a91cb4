"""App Service's traffic routing between production and a slot, as a local stand-in on 127.0.0.1.

As the platform does with a routing rule (``Traffic %``): a request without
an ``x-ms-routing-name`` cookie goes to the slot with the rule's
probability, and every answer sets that cookie (``self`` for production, the
slot's name otherwise), so a client that keeps cookies stays on the slot it
landed on (https://learn.microsoft.com/azure/app-service/deploy-staging-slots#route-production-traffic-automatically).
Bodies are relayed whole (the drill's answers are JSON, never streams).

    with slot_router(production.url, staging.url, percent=25, seed=7) as front:
        front.mcp_url
"""

from __future__ import annotations

import contextlib
import http.client
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from tests.app.round_robin import HOP_BY_HOP

COOKIE = "x-ms-routing-name"
PRODUCTION_ROUTING_NAME = "self"


@dataclass
class Router:
    url: str
    mcp_url: str
    # Routing name -> requests sent there.
    served: dict[str, int] = field(default_factory=dict)


@contextlib.contextmanager
def slot_router(production: str, slot: str, percent: float, seed: int, slot_name: str = "staging") -> Iterator[Router]:
    backends = {PRODUCTION_ROUTING_NAME: urlsplit(production), slot_name: urlsplit(slot)}
    chance = random.Random(seed)
    lock = threading.Lock()
    router = Router(url="", mcp_url="", served=dict.fromkeys(backends, 0))

    class Forward(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _route(self) -> str:
            cookie = SimpleCookie(self.headers.get("Cookie") or "")
            if COOKIE in cookie and cookie[COOKIE].value in backends:
                return cookie[COOKIE].value
            with lock:
                return slot_name if chance.random() * 100 < percent else PRODUCTION_ROUTING_NAME

        def do_POST(self) -> None:
            name = self._route()
            with lock:
                router.served[name] += 1
            target = backends[name]
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP | {"host", "cookie"}}
            upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
            try:
                upstream.request(self.command, self.path, body=body or None, headers=headers)
                response = upstream.getresponse()
                payload = response.read()
            finally:
                upstream.close()
            self.send_response(response.status, response.reason)
            for key, value in response.getheaders():
                if key.lower() not in HOP_BY_HOP | {"content-length", "date", "server"}:
                    self.send_header(key, value)
            self.send_header("Set-Cookie", f"{COOKIE}={name}; Path=/; HttpOnly")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Forward)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    router.url = f"http://127.0.0.1:{server.server_address[1]}"
    router.mcp_url = router.url + "/mcp"
    try:
        yield router
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
