"""A build that fails a share of its tool calls, for the canary drill (``--server tests.app.flaky_server:server``).

Its ``echo`` raises on every ``FLAKY_FAIL_EVERY``-th call of the process
(default 3), which the host answers as the SDK does, with an ``isError``
result (``tool_error`` in telemetry): a regression a canary must catch.
"""

import os
import threading

from mcp.server.mcpserver import MCPServer

SPEC = "tests.app.flaky_server:server"
FAIL_EVERY = int(os.environ.get("FLAKY_FAIL_EVERY", "3"))

server = MCPServer("flaky", version="2.0.0", log_level="WARNING")
_calls = 0
_lock = threading.Lock()


@server.tool()
async def echo(message: str) -> str:
    """Echo a message back, failing every FAIL_EVERY-th call."""
    global _calls
    with _lock:
        _calls += 1
        failing = _calls % FAIL_EVERY == 0
    if failing:
        raise RuntimeError("the new build's echo broke")
    return message
