"""The fixture server on the SDK's own Streamable HTTP transport, the reference our transport is measured against.

Stateless (no session, as our host serves) and SSE-capable (JSON-only mode off), so progress and log
notifications stream exactly as the SDK streams them: ``uvicorn tests.conformance.sdk_app:app``. ``/health``
is there so `tests.app.serving.running_server` can start it like our host.
"""

from starlette.requests import Request
from starlette.responses import JSONResponse

from tests.conformance.everything_server import server


@server.custom_route("/health", methods=["GET"])
async def health(_: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = server.streamable_http_app(stateless_http=True, json_response=False)
