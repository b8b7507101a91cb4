"""Everything the host reads from its environment, parsed and validated once at start-up.

| variable | meaning | default |
|---|---|---|
| ``MCP_SERVER`` | the ``MCPServer`` to serve, ``MODULE:ATTR`` (also ``--server``) | ``mcp-server.txt`` beside ``app/`` (what a deployment package names), else ``app.demo.server:server`` |
| ``MCP_REQUEST_STATE_KEYS`` | multi-round ``requestState`` key ring ``kid:secret,...``, secrets >= 32 characters (first seals, all open) | random key + warning (``python -m app`` shares one among its workers) |
| ``MCP_ALLOWED_ORIGINS`` | comma-separated allowed ``Origin`` values (``*`` = any); an absent Origin is always allowed | loopback origins only |
| ``MCP_SLOT_NAME`` | deployment slot (sticky app setting) | ``local`` |
| ``WEBSITE_INSTANCE_ID`` | App Service instance id | ``local`` |
| ``WEBSITE_AUTH_ENABLED`` | ``True`` (App Service sets it with Easy Auth on): trust the caller headers (`app.identity`) | unset: ignore them |
| ``MCP_TOOL_ROLES`` | JSON object, tool name -> list of Entra app roles, any of which may call it | every tool open |
| ``MCP_RATE_LIMITS``, ``MCP_REDIS_URL``, ... | rate limits on ``tools/call`` and where the fleet's counters live (`app.ratelimit.limiter`) | nothing limited |

The served server reads its own variables (the bundled demo's are listed in
`app.demo.server`).

Origins: a browser page may only call the server from an allowed origin
(DNS-rebinding protection). Unset, the allow-list is the loopback origins
(``http(s)://localhost``, ``127.0.0.1``, ``[::1]``, any port), which suits
local development and refuses every web page elsewhere; set it to the exact
origins of browser clients in a deployment. Non-browser clients send no
Origin and are unaffected. The Host header is not checked: on App Service it
is the site's public name, which the platform already routes on.

A bad value stops start-up with a message naming the variable and the
allowed values, rather than surfacing later as a failing request.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from app.contract import (
    ALLOWED_ORIGINS_ENV,
    BUILD_FILE_NAME,
    DEFAULT_SERVER,
    REQUEST_STATE_KEYS_ENV,
    SERVER_FILE_NAME,
    SLOT_NAME_ENV,
    TOOL_ROLES_ENV,
    json_object,
)
from app.handles import KeyRing
from app.identity import ToolRoles

REQUEST_STATE_MIN_SECRET = 32
"""The SDK's AES-GCM request-state codec refuses shorter secrets."""
SERVER_ENV = "MCP_SERVER"
EASY_AUTH_ENV = "WEBSITE_AUTH_ENABLED"
SERVER_FILE = Path(__file__).resolve().parent.parent / SERVER_FILE_NAME
"""Written into the deployment package by the infrastructure when it serves a team's server, so that the choice
travels with the code it names through deploys and slot swaps (an app setting would change on both slots at once)."""

BUILD_FILE = Path(__file__).resolve().parent.parent / BUILD_FILE_NAME
"""Written into the deployment package by the infrastructure: the package's build id, which /health reports so that
a deploy can tell which build a slot serves."""
_BUILD_ID = re.compile(r"[0-9a-f]{64}")

_LOOPBACK_ORIGIN = re.compile(r"^https?://(localhost|127\.0\.0\.1|\[::1\])(:\d{1,5})?$")


Number = TypeVar("Number", int, float)


class SettingsError(ValueError):
    """An environment variable holds a value the server cannot run with."""


def env_number(environ: Mapping[str, str], name: str, default: Number, lo: Number, hi: Number) -> Number:
    """``environ[name]`` as a number of ``default``'s type within ``lo..hi``; ``default`` when unset or blank."""
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    kind = type(default)
    try:
        value = kind(raw)
    except ValueError:
        noun = "an integer" if kind is int else "a number"
        raise SettingsError(f"{name}={raw!r} is not {noun}; allowed: {lo}..{hi}") from None
    if not lo <= value <= hi:
        raise SettingsError(f"{name}={value} is out of range; allowed: {lo}..{hi}")
    return value


READ_TIMEOUT_ENV = "MCP_READ_TIMEOUT_SECONDS"
DEFAULT_READ_TIMEOUT_S = 15.0


def read_timeout_seconds(environ: Mapping[str, str]) -> float:
    """The time a client gets to send a whole request (enforced by `app.http_protocol`)."""
    return env_number(environ, READ_TIMEOUT_ENV, DEFAULT_READ_TIMEOUT_S, 0.1, 3600)


def _origins(raw: str) -> frozenset[str]:
    origins = set()
    for item in raw.split(","):
        origin = item.strip().rstrip("/")
        if not origin:
            continue
        if origin != "*" and "://" not in origin:
            raise SettingsError(
                f"{ALLOWED_ORIGINS_ENV} entry {origin!r} is not an origin; expected 'scheme://host[:port]' (or '*')"
            )
        origins.add(origin.lower())
    return frozenset(origins)


def _tool_roles(raw: str) -> ToolRoles:
    expected = 'expected a JSON object of tool name -> non-empty list of role names, e.g. {"tally": ["Tally.Use"]}'
    roles = {}
    for tool, names in json_object(raw, TOOL_ROLES_ENV, expected, SettingsError).items():
        if not tool or not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
            raise SettingsError(f"{TOOL_ROLES_ENV} entry {tool!r}: {names!r} is not allowed; {expected}")
        roles[tool] = frozenset(names)
    return ToolRoles(roles)


def server_spec(environ: Mapping[str, str], server_file: Path = SERVER_FILE) -> str:
    """``MCP_SERVER``; else the package's ``mcp-server.txt`` (beside ``app/``); else the bundled demo."""
    chosen = environ.get(SERVER_ENV, "").strip()
    if not chosen and server_file.is_file():
        chosen = server_file.read_text(encoding="utf-8").strip()
    return chosen or DEFAULT_SERVER


def package_build(build_file: Path = BUILD_FILE) -> str | None:
    """The build id of the package this host runs from (``mcp-build.txt`` beside ``app/``), or None outside one."""
    if not build_file.is_file():
        return None
    build = build_file.read_text(encoding="utf-8").strip()
    if not _BUILD_ID.fullmatch(build):
        raise SettingsError(f"{build_file} holds {build[:80]!r}, not a package build id (64 hex digits)")
    return build


@dataclass(frozen=True)
class Settings:
    request_state_keys: KeyRing
    allowed_origins: frozenset[str] | None
    """None: MCP_ALLOWED_ORIGINS unset, loopback origins only."""
    slot_name: str
    instance_id: str
    easy_auth: bool = False
    """WEBSITE_AUTH_ENABLED is True: App Service Authentication vouches for the caller headers."""
    tool_roles: ToolRoles | None = None
    """None: MCP_TOOL_ROLES unset, every tool open to every caller."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            request_state_keys=KeyRing.from_env(
                env, REQUEST_STATE_KEYS_ENV, REQUEST_STATE_MIN_SECRET, "multi-round requestState values"
            ),
            allowed_origins=_origins(env[ALLOWED_ORIGINS_ENV]) if env.get(ALLOWED_ORIGINS_ENV, "").strip() else None,
            slot_name=env.get(SLOT_NAME_ENV, "").strip() or "local",
            instance_id=env.get("WEBSITE_INSTANCE_ID", "").strip() or "local",
            # App Service writes "True"; Microsoft.Identity.Web compares it case-insensitively, and so do we.
            easy_auth=env.get(EASY_AUTH_ENV, "").strip().lower() == "true",
            tool_roles=_tool_roles(env[TOOL_ROLES_ENV]) if env.get(TOOL_ROLES_ENV, "").strip() else None,
        )

    def origin_allowed(self, origin: str) -> bool:
        origin = origin.strip().rstrip("/").lower()
        if self.allowed_origins is None:
            return _LOOPBACK_ORIGIN.fullmatch(origin) is not None
        return "*" in self.allowed_origins or origin in self.allowed_origins
