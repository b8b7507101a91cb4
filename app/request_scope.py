"""Facts about the request being served that a tool may need, set by the dispatcher.

The SDK's `Context` reports client capabilities only inside its own session
machinery, which the lean transport does not run; the dispatcher sets this
context variable around each ``tools/call`` instead (``contextvars`` keeps
concurrent requests apart).
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

client_capabilities: ContextVar[dict[str, Any] | None] = ContextVar("client_capabilities", default=None)
"""``_meta`` clientCapabilities of a 2026-07-28 request; None for a legacy request (not sent per request)."""
