"""A round-robin HTTP front end for tests: one URL in front of several server processes.

It stands in for App Service's front end with client affinity off: every
request (not every connection) goes to the next backend in turn, so a client
keeping one connection open still sees its calls served by different
instances, as it would on a scaled-out site.

    with running_server(...) as a, running_server(...) as b, round_robin([a.url, b.url]) as front:
        front.url   # "http://127.0.0.1:<port>"
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import socket
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

# Connection-level headers a proxy must not forward (RFC 9110 section 7.6.1).
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}


@dataclass
class FrontEnd:
    url: str
    mcp_url: str


@contextlib.contextmanager
def round_robin(backends: Sequence[str]) -> Iterator[FrontEnd]:
    targets = [urlsplit(b) for b in backends]
    turn = itertools.cycle(range(len(targets)))
    lock = threading.Lock()
    # Streams still being relayed (a subscriptions/listen stays open): cut at exit, as a front end going away does,
    # so no backend waits out its graceful shutdown for a client that is gone.
    relaying: set[http.client.HTTPConnection] = set()

    class Forward(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self) -> None:
            with lock:
                target = targets[next(turn)]
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP | {"host"}}
            upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            with lock:
                relaying.add(upstream)
            try:
                upstream.request(self.command, self.path, body=body or None, headers=headers)
                response = upstream.getresponse()
                self.send_response(response.status, response.reason)
                for key, value in response.getheaders():
                    if key.lower() not in HOP_BY_HOP | {"content-length", "date", "server"}:
                        self.send_header(key, value)
                if response.getheader("Content-Length") is not None:
                    payload = response.read()
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                else:
                    self._stream(response)
            except (BrokenPipeError, ConnectionResetError, http.client.IncompleteRead):
                pass  # the client hung up on a stream it was done with, or the backend cut one short at shutdown
            finally:
                with lock:
                    relaying.discard(upstream)
                upstream.close()

        def _stream(self, response: http.client.HTTPResponse) -> None:
            """Relay a body of unknown length (an SSE stream) chunk by chunk, as a real front end does.

            Buffering it whole would hold progress events back until the result, and never answer a
            stream that stays open (``subscriptions/listen``).
            """
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            while chunk := response.read1(65536):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")

        do_GET = do_POST = do_DELETE = do_PUT = _forward

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Forward)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield FrontEnd(url=url, mcp_url=url + "/mcp")
    finally:
        server.shutdown()
        with lock:
            cut = [c.sock for c in relaying if c.sock is not None]
        for sock in cut:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        server.server_close()
        thread.join(timeout=5)
