"""A team's own server for the bring-your-own-server scenarios: what ``--server`` costs and streams.

``quote`` is a typical third-party tool (typed arguments, a pydantic model as
structured output, no `Context`); ``countdown`` reports three progress steps
through its `Context`, which our host streams as SSE. Served three ways:

    python -m app --server bench.byo_server:server      ours
    uvicorn bench.byo_server:sdk_json_app                the SDK's stateless transport, JSON responses
    uvicorn bench.byo_server:sdk_sse_app                 the same, SSE allowed (what progress needs)
"""

from typing import Literal

from mcp.server.mcpserver import Context, MCPServer
from pydantic import BaseModel, Field

server = MCPServer("acme-quotes", version="1.0.0", log_level="WARNING")

PRICES = {"ACME": 123.45, "INIT": 42.0, "MSFT": 512.3}


class Quote(BaseModel):
    symbol: str
    price: float
    currency: Literal["USD"]
    source: str = Field(description="Where the price came from")


@server.tool()
async def quote(symbol: str = Field(pattern=r"^[A-Z]{1,5}$", description="Ticker symbol")) -> Quote:
    """The last price of a ticker."""
    return Quote(symbol=symbol, price=PRICES.get(symbol, 1.0), currency="USD", source="bench")


@server.tool()
async def countdown(ctx: Context, steps: int = 3) -> str:
    """Report ``steps`` progress notifications, then finish."""
    for step in range(1, steps + 1):
        await ctx.report_progress(step, steps)
    return f"counted {steps}"


def __getattr__(name: str):
    # The SDK-side apps are built only in the process that serves them (the host never builds one).
    if name in ("sdk_json_app", "sdk_sse_app"):
        return server.streamable_http_app(stateless_http=True, json_response=name == "sdk_json_app")
    raise AttributeError(name)
