"""The host: any `MCPServer` served statelessly at scale (MCP 2026-07-28 plus legacy 2025-xx clients).

Its public surface is small. To serve: ``python -m app --server MODULE:ATTR``
(`app.__main__`); to embed: `app.main.create_app` (``server=...``). In a
served server's tools, prompts and resources: ``from app import
current_caller`` (the signed-in `Caller` behind Easy Auth, or None;
`app.identity`) and `app.handles` (explicit signed handles). The bundled demo
(`app.demo`) uses nothing else.
"""

from app.identity import Caller, current_caller

__all__ = ["Caller", "current_caller"]
