"""A team's server whose tools stream, for tests/app/test_kernel.py (served with ``--server``)."""

import asyncio
import logging

from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("streaming", version="1.0.0", log_level="WARNING")
logger = logging.getLogger("streaming_server")


@server.tool()
async def count(ctx: Context, upto: int, pause: float = 0.0) -> str:
    """Progress 1..upto, pausing between steps (so that concurrent calls interleave)."""
    for step in range(1, upto + 1):
        await ctx.report_progress(step, upto, f"{ctx.request_id}:{step}")
        await asyncio.sleep(pause)
    return f"counted to {upto}"


@server.tool()
async def quiet(ctx: Context) -> str:
    """Takes a Context, sends nothing."""
    return f"quiet {ctx.request_id}"


@server.tool()
async def linger(ctx: Context, seconds: float) -> str:
    """Sleeps; says in the server log when it is cancelled."""
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        logger.warning("linger %s cancelled", ctx.request_id)
        raise
    return "lingered"
