"""The bundled stateless MCP server (MCP 2026-07-28 plus legacy 2025-xx clients).

What a served server may use of the host, besides `app.main.create_app` and
`app.handles`: ``from app import current_caller`` in any tool, prompt or
resource, the signed-in `Caller` behind Easy Auth, or None (`app.identity`).
"""

from app.identity import Caller, current_caller

__all__ = ["Caller", "current_caller"]
