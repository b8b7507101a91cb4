"""A broken MCP endpoint for tests: every request gets one fixed answer.

    with broken_server((500, "text/html", b"<h1>Application Error</h1>")) as url:
        url   # "http://127.0.0.1:<port>/mcp"

In the body ``{id}`` becomes the request's JSON-RPC id, so a client takes the
answer as the response to its request.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Broken(BaseHTTPRequestHandler):
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
def broken_server(answer: tuple[int, str, bytes]) -> Iterator[str]:
    """Serve ``answer`` (status, content type, body) to every request; yield the /mcp URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Broken)
    server.answer = answer
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/mcp"
    finally:
        server.shutdown()
        server.server_close()
