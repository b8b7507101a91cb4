"""The fixture server on the SDK's own Streamable HTTP transport, the reference our transport is measured against.

Stateless (no session, as our host serves) and SSE-capable (JSON-only mode off), so progress and log
notifications stream exactly as the SDK streams them: ``uvicorn tests.conformance.sdk_app:app``. ``/health``
is there so `tests.app.serving.running_server` can start it like our host.
"""

from tests.app.serving import sdk_app
from tests.conformance.everything_server import server

app = sdk_app(server, json_response=False)
