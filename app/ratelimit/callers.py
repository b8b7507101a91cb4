"""Who a rate limit counts a call against: the Easy Auth caller, else the client's address as App Service saw it.

A signed-in caller (`app.identity`) is keyed by its principal (``aad:<object id>``), which App Service
Authentication vouches for. An anonymous caller is keyed by its client address, and never by a header the
client writes itself:

- On App Service (``WEBSITE_SITE_NAME`` is set, as the platform sets it), the app's peer is the platform's
  front end, which forwards the address it accepted the connection from in ``X-Forwarded-For``. That header
  is a list a client can start itself (each proxy appends the address it saw, "the first parameter indicates
  the client where the request was first made. Subsequent proxy identifiers follow": ASP.NET Core, Configure
  ASP.NET Core to work with proxy servers and load balancers, learn.microsoft.com/aspnet/core/host-and-deploy/
  proxy-load-balancer), so only its last entry, the one the front end appended, is the front end's word; the
  same rule ASP.NET Core applies by default (``ForwardLimit`` 1: "only the rightmost value ... is processed").
  App Service writes it as ``ip:port`` (and ``[v6]:port``); the port is dropped, since it changes per
  connection. A site behind a proxy of its own (Azure Front Door, Application Gateway) sees that proxy's
  address here: rate limit anonymous callers at that proxy, or sign callers in.
- Anywhere else (local runs, tests) the TCP peer's address, since nothing in front vouches for a header.
"""

from __future__ import annotations

from collections.abc import Iterable

from app.identity import Caller

FORWARDED_FOR = b"x-forwarded-for"
ANONYMOUS_PREFIX = "ip:"


def client_address(headers: Iterable[tuple[bytes, bytes]], peer: str | None, behind_front_end: bool) -> str:
    """The anonymous caller's address: the front end's (last) ``X-Forwarded-For`` entry, else the TCP peer."""
    if behind_front_end:
        forwarded = None
        for name, value in headers:
            if name == FORWARDED_FOR:  # several such headers read as one list, in order: the last one's last entry
                forwarded = value
        if forwarded is not None:
            entry = forwarded.decode("latin-1").rsplit(",", 1)[-1].strip()
            if entry:
                return _host(entry)
    return peer or "unknown"


def _host(entry: str) -> str:
    if entry.startswith("["):  # [v6]:port
        return entry[1 : entry.find("]")] if "]" in entry else entry
    if entry.count(":") == 1:  # v4:port
        return entry.split(":", 1)[0]
    return entry  # v4, or a bare v6 address


def caller_key(caller: Caller | None, address: str) -> str:
    """The key a per-caller limit counts under: the principal, or ``ip:<address>`` for an anonymous caller."""
    return caller.principal if caller is not None else ANONYMOUS_PREFIX + address
