"""The SDK's own transport with telemetry as a team would turn it on: the production scenario's baseline.

The same demo `MCPServer` as ``bench.sdk_server`` (stateless, JSON responses),
in a process where the Azure Monitor distro is configured exactly as our
host configures it (`app.telemetry.setup`: same resource, same sampler
defaults, same exporter), so the SDK's built-in OpenTelemetry middleware (a
span per request) exports through the same pipeline ours does.

Run as ``uvicorn bench.sdk_telemetry_server:app`` with
``APPLICATIONINSIGHTS_CONNECTION_STRING`` set.
"""

import os

from app import telemetry
from bench.tools import mcp_server

if telemetry.setup(os.environ) is None:
    raise SystemExit(f"{telemetry.CONNECTION_STRING_ENV} must be set for the production scenario")
app = mcp_server().streamable_http_app(stateless_http=True, json_response=True)
