"""Who is calling: the signed-in caller App Service Authentication (Easy Auth) puts in the request headers.

With Easy Auth on, App Service authenticates every request before the app
sees it and passes the result as headers::

    X-MS-CLIENT-PRINCIPAL       base64 of JSON {"auth_typ", "claims": [{"typ", "val"}...], "name_typ", "role_typ"}
    X-MS-CLIENT-PRINCIPAL-ID    the caller's id from the identity provider (Entra ID: the object id)
    X-MS-CLIENT-PRINCIPAL-NAME  a readable name (Entra ID: the user principal name or e-mail)
    X-MS-CLIENT-PRINCIPAL-IDP   the identity provider ("aad")

The spoofing rule: these headers are trusted only when ``WEBSITE_AUTH_ENABLED``
is ``True`` (App Service sets it when Easy Auth is on, and then strips any such
header a client sends before adding its own). Anywhere else a client could
write them, so the host ignores them entirely: no caller, no roles
(`app.settings.Settings.easy_auth`).

Tools read the caller through `current_caller()`, on every path a request can
take (the dispatcher's fast path and the SDK kernel): it returns a `Caller`, or
None without Easy Auth or for an anonymous request. The dispatcher parses the
headers only for a request that can observe the caller (a tool call, a
role-scoped ``tools/list``, anything the SDK kernel runs) and never without
Easy Auth, so answers from the start-up cache cost nothing extra. Headers that
do not parse behind Easy Auth are refused with HTTP 401 naming the header and
the problem (`CallerError`): App Service never sends them, so something in
between is broken or forging them.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass

PRINCIPAL_HEADER = "X-MS-CLIENT-PRINCIPAL"
ID_HEADER = "X-MS-CLIENT-PRINCIPAL-ID"
NAME_HEADER = "X-MS-CLIENT-PRINCIPAL-NAME"
IDP_HEADER = "X-MS-CLIENT-PRINCIPAL-IDP"
_HEADERS = {name.lower().encode(): name for name in (PRINCIPAL_HEADER, ID_HEADER, NAME_HEADER, IDP_HEADER)}
MAX_HEADER_BYTES = 64 * 1024
"""The most any one principal header may hold (the HTTP parser's whole-head limit is the same, app.http_protocol)."""
ROLES_CLAIM = "roles"
"""Entra ID app roles arrive as ``roles`` claims even where ``role_typ`` names the long role URI (Easy Auth takes
the v2.0 token's claim names as they are; Microsoft.Identity.Web reads ``roles`` for the same reason)."""


@dataclass(frozen=True, slots=True)
class Caller:
    """The signed-in caller of one request, as App Service Authentication vouches for it."""

    id: str
    """The identity provider's id for the caller (Entra ID: the object id, pseudonymous)."""
    name: str | None
    """A readable name (Entra ID: user principal name or e-mail); personal data, keep it out of logs."""
    idp: str
    """The identity provider (``aad`` for Entra ID)."""
    roles: frozenset[str]
    """App roles assigned to the caller (Entra ID app roles, the ``roles`` claims)."""
    claims: tuple[tuple[str, str], ...] = ()
    """Every claim of the principal as (type, value), in the order sent (a type may repeat)."""

    @property
    def principal(self) -> str:
        """What handles and request state are bound to: the provider and the caller's id."""
        return f"{self.idp}:{self.id}"


class CallerError(ValueError):
    """Principal headers behind Easy Auth that do not parse; the message names the header and the problem."""


_current: ContextVar[Caller | None] = ContextVar("mcp_caller", default=None)


def current_caller() -> Caller | None:
    """The caller of the request being served, or None (no Easy Auth, or an anonymous request).

    Works in any tool, prompt or resource of any server the host serves, on the
    fast path and the SDK kernel alike.
    """
    return _current.get()


def serve_as(caller: Caller | None):
    """Make ``caller`` the current caller; returns the token `stop_serving` takes (the dispatcher's per request)."""
    return _current.set(caller)


def stop_serving(token) -> None:
    _current.reset(token)


def caller_from_headers(headers: Iterable[tuple[bytes, bytes]]) -> Caller | None:
    """The caller in Easy Auth's headers (lowercase names), None when the request carries none.

    Raises `CallerError` for headers App Service would not send: repeated, over
    `MAX_HEADER_BYTES`, not UTF-8, an id without a principal (or the reverse),
    a principal that is not base64 of a JSON object with a ``claims`` list of
    ``{"typ", "val"}`` strings.
    """
    found: dict[str, str] = {}
    for raw_name, raw_value in headers:
        name = _HEADERS.get(raw_name)
        if name is None:
            continue
        if name in found:
            raise CallerError(f"{name} appears more than once")
        if len(raw_value) > MAX_HEADER_BYTES:
            raise CallerError(f"{name} is {len(raw_value)} bytes, over the {MAX_HEADER_BYTES}-byte limit")
        try:
            found[name] = raw_value.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise CallerError(f"{name} is not UTF-8") from None
    if not found:
        return None
    for required in (PRINCIPAL_HEADER, ID_HEADER):
        if not found.get(required):
            present = ", ".join(sorted(found))
            raise CallerError(f"{required} is missing or empty, though the request carries {present}")
    principal = _principal(found[PRINCIPAL_HEADER])
    claims = _claims(principal)
    role_types = {ROLES_CLAIM, _text(principal, "role_typ")}
    name_type = _text(principal, "name_typ")
    name = found.get(NAME_HEADER) or next((value for typ, value in claims if typ == name_type), None)
    return Caller(
        id=found[ID_HEADER],
        name=name,
        idp=found.get(IDP_HEADER) or _text(principal, "auth_typ") or "unknown",
        roles=frozenset(value for typ, value in claims if typ in role_types),
        claims=claims,
    )


def _principal(encoded: str) -> dict:
    try:
        decoded = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise CallerError(f"{PRINCIPAL_HEADER} is not base64") from None
    try:
        principal = json.loads(decoded)
    except (UnicodeDecodeError, ValueError):
        raise CallerError(f"{PRINCIPAL_HEADER} is base64, but not of UTF-8 JSON") from None
    if not isinstance(principal, dict):
        raise CallerError(f"{PRINCIPAL_HEADER} is JSON {type(principal).__name__}, expected an object")
    return principal


def _claims(principal: dict) -> tuple[tuple[str, str], ...]:
    claims = principal.get("claims")
    if not isinstance(claims, list):
        raise CallerError(f"{PRINCIPAL_HEADER} has no 'claims' list")
    pairs = []
    for position, claim in enumerate(claims):
        typ = claim.get("typ") if isinstance(claim, dict) else None
        val = claim.get("val") if isinstance(claim, dict) else None
        if not isinstance(typ, str) or not isinstance(val, str):
            raise CallerError(f"{PRINCIPAL_HEADER} claim {position} is not an object of strings 'typ' and 'val'")
        pairs.append((typ, val))
    return tuple(pairs)


def _text(principal: dict, key: str) -> str | None:
    value = principal.get(key)
    if value is not None and not isinstance(value, str):
        raise CallerError(f"{PRINCIPAL_HEADER} field {key!r} is {type(value).__name__}, expected a string")
    return value


@dataclass(frozen=True)
class ToolRoles:
    """Which Entra app roles may call which tools (``MCP_TOOL_ROLES``): any one listed role allows the call.

    A tool not listed is open to every caller. A listed tool is closed to a
    request without a caller, so without Easy Auth (where no request has one)
    it is served to no one: roles fail closed.
    """

    roles: dict[str, frozenset[str]]

    def allows(self, caller: Caller | None, tool: str) -> bool:
        needed = self.roles.get(tool)
        return needed is None or (caller is not None and not needed.isdisjoint(caller.roles))

    def hidden_from(self, caller: Caller | None) -> frozenset[str]:
        """The listed tools ``caller`` may not call (and so does not see in ``tools/list``)."""
        return frozenset(tool for tool in self.roles if not self.allows(caller, tool))
