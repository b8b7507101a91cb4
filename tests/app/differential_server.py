"""A team's server as the SDK documents it, for the differential test (tests/app/test_differential.py).

Every tool that takes a `Context` runs on the host's SDK kernel path; ``add``
takes none and runs on the host's fast path. Served by ours with
``python -m app --server tests.app.differential_server:server`` and by the
SDK's own transport with ``uvicorn tests.app.differential_server:sdk_app``.
"""

import base64

from mcp.server.mcpserver import Context, Image, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ElicitRequest, ElicitRequestFormParams, ElicitResult, InputRequiredResult
from pydantic import BaseModel

server = MCPServer("differential", version="3.1.4", instructions="A server written against the SDK's Context.")

PNG_1X1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="
)


class Sum(BaseModel):
    total: int


@server.tool()
async def add(a: int, b: int) -> Sum:
    """Structured output, no context."""
    return Sum(total=a + b)


@server.tool()
async def steps(ctx: Context, count: int = 3) -> str:
    """Progress and log notifications, then the request id it ran under."""
    for step in range(1, count + 1):
        await ctx.report_progress(step, count, f"step {step} of {count}")
        await ctx.info(f"did step {step}")
    await ctx.debug("below the info opt-in")
    return f"{count} steps for request {ctx.request_id}"


@server.tool()
async def picture(ctx: Context) -> Image:
    """An image result."""
    await ctx.info("drawing")
    return Image(data=PNG_1X1, format="png")


@server.tool()
async def refuse(ctx: Context, reason: str) -> str:
    """A tool error (isError), raised after a log line."""
    await ctx.warning(f"refusing: {reason}")
    raise ToolError(f"refused: {reason}")


@server.tool()
async def transfer(ctx: Context, amount: int) -> str | InputRequiredResult:
    """Two rounds: ask for confirmation (input_required with requestState), then act on the answer."""
    answer = (ctx.input_responses or {}).get("confirm")
    if answer is None:
        return InputRequiredResult(
            result_type="input_required",
            input_requests={
                "confirm": ElicitRequest(
                    method="elicitation/create",
                    params=ElicitRequestFormParams(
                        message=f"Transfer {amount}?",
                        requested_schema={"type": "object", "properties": {"ok": {"type": "boolean"}}},
                    ),
                )
            },
            request_state=f"pending:{amount}",
        )
    if not isinstance(answer, ElicitResult) or answer.action != "accept":
        raise ToolError("transfer cancelled")
    return f"transferred {amount} (state {ctx.request_state})"


@server.resource("greeting://{name}", mime_type="text/plain")
async def greeting(name: str) -> str:
    return f"Hello, {name}!"


@server.prompt()
async def review(code: str, language: str = "python") -> str:
    """Ask for a review of a snippet."""
    return f"Review this {language} code:\n{code}"


def __getattr__(name: str):
    # The SDK's own app (with the /health that tests.app.serving waits for), built only when the SDK-side
    # process asks for it: the host never does.
    if name == "sdk_app":
        from tests.app.serving import sdk_app

        return sdk_app(server)
    raise AttributeError(name)
