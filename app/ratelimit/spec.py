"""The rate-limit configuration, ``MCP_RATE_LIMITS``: parsed and validated once, with the standard library only.

The value is a JSON object (or, from the Pulumi stack's ``rateLimits`` config, the same object already
decoded) from a tool name, or ``*``, to its limits::

    {"*": {"perCaller": "600/minute"},
     "compute_primes": {"perCaller": "10/minute", "total": "1000/minute"}}

Each limit is ``N/second``, ``N/minute`` or ``N/hour`` with ``N`` a positive integer. ``perCaller`` holds
for each caller on its own, ``total`` for every caller together across the whole fleet. ``*`` counts every
``tools/call`` together (a caller's overall budget); a named tool's limits hold besides it, so a call to
``compute_primes`` above needs room in all three.

The API the stack uses: `parse_rate_limits` (raises `RateLimitSpecError` naming the entry and the allowed
values) and `check_tools` (a name the served server lacks); `to_json` renders a spec back to the app
setting's value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from app.contract import RATE_LIMITS_ENV, json_object

EVERY_TOOL = "*"
PER_CALLER = "perCaller"
TOTAL = "total"
SCOPES = (PER_CALLER, TOTAL)
PERIODS = {"second": 1, "minute": 60, "hour": 3600}
MAX_COUNT = 10**9
_RATE = re.compile(r"\s*(\d+)\s*/\s*([a-z]+)\s*")
_EXAMPLE = '{"*": {"perCaller": "600/minute"}, "compute_primes": {"perCaller": "10/minute", "total": "1000/minute"}}'


class RateLimitSpecError(ValueError):
    """A rate-limit configuration the server cannot run with; the message names the entry and what is allowed."""


@dataclass(frozen=True, slots=True)
class Rate:
    """``count`` calls per ``period_s`` seconds (a fixed window aligned to the epoch)."""

    count: int
    period_s: int

    def __str__(self) -> str:
        unit = next(name for name, seconds in PERIODS.items() if seconds == self.period_s)
        return f"{self.count}/{unit}"


@dataclass(frozen=True, slots=True)
class ToolLimits:
    """The limits on one tool (or on every call, for ``*``); None where that scope is unlimited."""

    tool: str
    per_caller: Rate | None = None
    total: Rate | None = None


def parse_rate(text: Any, where: str) -> Rate:
    """``"N/second|minute|hour"`` as a `Rate`; ``where`` names the entry in the error."""
    allowed = f"expected 'N/second', 'N/minute' or 'N/hour' with N from 1 to {MAX_COUNT}, e.g. '10/minute'"
    match = _RATE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise RateLimitSpecError(f"{where} is {text!r}; {allowed}")
    count, unit = int(match.group(1)), match.group(2)
    if unit not in PERIODS:
        raise RateLimitSpecError(f"{where} has the unit {unit!r}; {allowed}")
    if not 1 <= count <= MAX_COUNT:
        raise RateLimitSpecError(f"{where} allows {count} calls; {allowed}")
    return Rate(count, PERIODS[unit])


def parse_rate_limits(spec: str | Mapping[str, Any], source: str = RATE_LIMITS_ENV) -> dict[str, ToolLimits]:
    """The limits per tool name (``*`` included) from JSON text or the decoded object; ``source`` names the
    setting in errors (``MCP_RATE_LIMITS`` for the app, the config key for the stack)."""
    expected = f"expected a JSON object of tool name (or '*') -> {{'perCaller': rate, 'total': rate}}, e.g. {_EXAMPLE}"
    limits = {}
    for tool, entry in json_object(spec, source, expected, RateLimitSpecError).items():
        if not isinstance(tool, str) or not tool:
            raise RateLimitSpecError(f"{source} has an empty tool name; {expected}")
        where = f"{source}[{tool!r}]"
        if not isinstance(entry, Mapping) or not entry:
            raise RateLimitSpecError(f"{where} is {entry!r}; {expected}")
        unknown = sorted(set(entry) - set(SCOPES))
        if unknown:
            raise RateLimitSpecError(
                f"{where} has the unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(SCOPES)}"
            )
        limits[tool] = ToolLimits(
            tool,
            per_caller=parse_rate(entry[PER_CALLER], f"{where}.{PER_CALLER}") if PER_CALLER in entry else None,
            total=parse_rate(entry[TOTAL], f"{where}.{TOTAL}") if TOTAL in entry else None,
        )
    return limits


def check_tools(limits: Mapping[str, ToolLimits], tools: Iterable[str], source: str = RATE_LIMITS_ENV) -> None:
    """Refuse a limit on a tool the served server does not have (a typo would otherwise limit nothing)."""
    known = set(tools)
    unknown = sorted(set(limits) - known - {EVERY_TOOL})
    if unknown:
        raise RateLimitSpecError(
            f"{source} names tool(s) the server does not have: {', '.join(unknown)}; "
            f"its tools: {', '.join(sorted(known))} (or '*' for every tool)"
        )


def to_json(limits: Mapping[str, ToolLimits]) -> str:
    """The app setting's value for ``limits`` (what `parse_rate_limits` reads back)."""
    return json.dumps(
        {
            tool: {
                scope: str(rate)
                for scope, rate in ((PER_CALLER, entry.per_caller), (TOTAL, entry.total))
                if rate is not None
            }
            for tool, entry in limits.items()
        },
        separators=(",", ":"),
    )
