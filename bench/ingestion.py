"""A stand-in for Application Insights ingestion (and live metrics) on 127.0.0.1.

It accepts every batch the Azure Monitor exporter sends and answers as the
service does (``itemsAccepted`` = items received), so exporters neither retry
nor spill to disk, and nothing leaves the machine. The production benchmark
runs it in its own (unmeasured) process and only counts; the telemetry tests
keep what arrives (``keep=True``) to read the rows back.
"""

from __future__ import annotations

import gzip
import http.server
import json
import threading


class Ingestion:
    def __init__(self, keep: bool = False) -> None:
        self.items = 0
        self.envelopes: list[dict] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received = 0
                if self.path.startswith(("/v2.1/track", "/v2/track")):
                    if self.headers.get("Content-Encoding") == "gzip":
                        body = gzip.decompress(body)
                    items = json.loads(body)
                    items = items if isinstance(items, list) else [items]
                    received = len(items)
                    with outer.lock:
                        outer.items += received
                        if keep:
                            outer.envelopes.extend(items)
                answer = json.dumps({"itemsReceived": received, "itemsAccepted": received, "errors": []}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def connection_string(self) -> str:
        return f"InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint={self.url};LiveEndpoint={self.url}"

    def close(self) -> None:
        self.server.shutdown()
