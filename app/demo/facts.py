"""The fact catalogue served by ``lookup_fact`` and the ``fact://{key}`` resources.

Static, in-process data: every instance serves the same facts, so results
are cacheable (``cacheScope: public``) and need no backing store.
"""

from __future__ import annotations

from types import MappingProxyType

FACTS = MappingProxyType(
    {
        "mcp": "The Model Context Protocol lets AI applications call tools and read resources on servers over JSON-RPC.",
        "stateless": "From MCP 2026-07-28 every request is self-contained: no initialize handshake and no session.",
        "handles": "Cross-request state travels in explicit, signed, expiring handles passed as tool arguments.",
        "app-service": "Azure App Service runs web apps on a plan whose instances sit behind one load balancer.",
        "staging-slot": "A deployment slot is a live app with its own host name; a swap exchanges it with production.",
        "autoscale": "Autoscale changes a plan's instance count from metric rules, such as average CPU percentage.",
    }
)
"""Fact key -> text. Keys are URI-safe so each is also ``fact://<key>``."""


def fact_uri(key: str) -> str:
    return f"fact://{key}"
