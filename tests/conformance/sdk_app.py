"""The fixture server on the SDK's own Streamable HTTP transport, the reference our transport is measured against.

Stateless (no session, as our host serves) and SSE-capable (JSON-only mode off), so progress and log
notifications stream exactly as the SDK streams them: ``uvicorn tests.conformance.sdk_app:app``.
"""

from tests.conformance.everything_server import server

app = server.streamable_http_app(stateless_http=True, json_response=False)
