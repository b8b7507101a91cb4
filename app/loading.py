"""Finding the server to host: ``MODULE:ATTR`` naming an `MCPServer` instance.

The same syntax as uvicorn's app strings (``--server``, env ``MCP_SERVER``).
Everything that can go wrong is told apart, because it is the first thing a
team sees when it brings its own server: a malformed value, a module that is
not on the path, a module that fails while importing (its own traceback is
logged, the message names the exception), a missing attribute, and an
attribute that is not an `MCPServer` (e.g. the low-level `Server`, or the
ASGI app from ``streamable_http_app()``).
"""

from __future__ import annotations

import importlib
import logging
import re

from app.settings import SERVER_ENV, SettingsError

logger = logging.getLogger(__name__)

_SPEC = re.compile(r"^(?P<module>[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*):(?P<attr>[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*)$")


class ServerSpecError(SettingsError):
    """``--server`` / ``MCP_SERVER`` does not name a servable `MCPServer`."""


def load_server(spec: str):
    """Import ``MODULE`` and return its ``ATTR``, checked to be an `MCPServer` instance."""
    from mcp.server.mcpserver import MCPServer  # here, not at import: the CLI checks specs without the SDK

    match = _SPEC.fullmatch(spec.strip())
    if match is None:
        raise ServerSpecError(
            f"{SERVER_ENV}/--server={spec!r} is not 'MODULE:ATTR' (e.g. 'acme_tools.server:mcp', "
            "a dotted module path, a colon, then the MCPServer's attribute name)"
        )
    module_name, attr_path = match["module"], match["attr"]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name is not None and module_name.startswith(error.name):
            raise ServerSpecError(
                f"{SERVER_ENV}/--server={spec!r}: no module named {error.name!r} on the Python path "
                "(run from the folder that holds it, or install its package)"
            ) from None
        logger.exception("importing %s failed", module_name)
        raise ServerSpecError(
            f"{SERVER_ENV}/--server={spec!r}: importing {module_name!r} failed: {error} (its traceback is logged above)"
        ) from None
    except Exception as error:
        logger.exception("importing %s failed", module_name)
        raise ServerSpecError(
            f"{SERVER_ENV}/--server={spec!r}: importing {module_name!r} failed: {type(error).__name__}: {error} "
            "(its traceback is logged above)"
        ) from None
    target: object = module
    for part in attr_path.split("."):
        if not hasattr(target, part):
            raise ServerSpecError(f"{SERVER_ENV}/--server={spec!r}: module {module_name!r} has no attribute {part!r}")
        target = getattr(target, part)
    if not isinstance(target, MCPServer):
        raise ServerSpecError(
            f"{SERVER_ENV}/--server={spec!r} is a {type(target).__module__}.{type(target).__qualname__}, "
            "not an mcp.server.mcpserver.MCPServer instance (name the MCPServer itself, not an app built from it)"
        )
    return target
