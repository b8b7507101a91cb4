"""The canary gate: is the build on the staging slot as healthy as production, by Application Insights?

Run by the release command (``components.canary``) as ``python -m
components.canary_gate`` on the deploying machine, during ``pulumi up``. It
lives beside the components, not in ``app/``: it runs where the Pulumi
program runs, with the same interpreter and dependency group (``infra``:
``azure-monitor-query``, ``azure-identity``), it is versioned with the
script that reads its exit status, and it must never ship in the app
package (which holds ``app/`` only). Like every component it reads the
telemetry contract from ``components.workbook``, never from ``app``.

The query (:func:`window_query`) reads the ``requests`` rows of MCP messages
(one per message, ``cloud_RoleName`` = ``mcp-server-<slot>``) of both slots
over the window, with ``LogsQueryClient.query_resource`` on the Application
Insights component and the deploying user's Azure CLI sign-in
(``AzureCliCredential``). Per slot, overall and per tool: requests
(``sum(itemCount)``, right under sampling), the rows behind them, failures and
the p95 duration weighted by ``itemCount``.

A failure is what a new build can cause and a caller cannot: a JSON-RPC
internal error (-32603, answered with HTTP 500), an unhandled exception, an
HTTP 5xx, or a tool result with ``isError`` (``tool_error``: the SDK's form of
a tool that raised). Callers' own mistakes (-32602, -32601, ...) are not
failures. Tool errors a caller provokes (bad input) occur on both sides at
the same rate, so comparing the canary with production cancels them.

The decision (:func:`decide`) compares rates, never counts: the split is
uneven (cookie-pinned clients, ``components.canary``), so each side needs
``min_requests`` sampled rows before any verdict. Roll back when the
canary's error rate exceeds production's by more than
``max_error_rate_points``, or its p95 exceeds ``max_p95_ratio`` times
production's, overall or for any tool with the minimum sample on both sides;
durations below :data:`P95_FLOOR_MS` count as that floor, so sub-millisecond
noise never decides. Otherwise promote, or, with too few rows, not enough
data.

The observation (:func:`observe`) polls: a roll-back verdict ends it at once;
promotion waits until ``minutes`` plus the ingestion allowance have passed;
without enough data by twice ``minutes`` (plus the allowance) it gives up,
and the release rolls back.
"""

from __future__ import annotations

import argparse
import enum
import math
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from components.canary import GATE_NOT_ENOUGH_DATA, GATE_PROMOTE, GATE_ROLL_BACK, CanaryPolicy
from components.site_config import PRODUCTION_SLOT
from components.workbook import ATTR_METHOD, ATTR_TOOL, DIM_ERROR_TYPE, SERVICE_NAME_PREFIX

# App Insights rows become queryable typically 20 s to 3 min after they are sent ("Log data ingestion time in
# Azure Monitor", https://learn.microsoft.com/azure/azure-monitor/logs/data-ingestion-time): the last minutes of a
# window fill in late, so the final verdict waits this long after the observation.
INGESTION_ALLOWANCE = timedelta(minutes=3)
POLL_INTERVAL = timedelta(minutes=1)
# p95 durations below this are compared as this: a ratio of two sub-millisecond figures is noise, not a regression.
P95_FLOOR_MS = 10.0
# mcp.error.type values that are failures of the build (module docstring); an exception class name is one too.
INTERNAL_ERROR = "-32603"
TOOL_ERROR = "tool_error"
COLUMNS = (
    ("slot", "string"),
    ("tool", "string"),
    ("requests", "long"),
    ("sampled", "long"),
    ("failures", "long"),
    ("p95_ms", "real"),
)
_SLOT_NAME = re.compile(r"^[A-Za-z0-9-]{1,59}$")
_NUMERIC = re.compile(r"^-?[0-9]+$")


def _role(slot: str) -> str:
    if not _SLOT_NAME.match(slot):
        raise ValueError(f"slot must be a deployment slot name (letters, digits, '-'), got {slot!r}")
    return SERVICE_NAME_PREFIX + slot


def window_query(canary_slot: str) -> str:
    """KQL over ``requests``: one row per slot and tool ("" = every message), columns :data:`COLUMNS`.

    The window is the query's ``timespan``; :func:`aggregate_rows` is the same aggregation in Python.
    """
    roles = f'"{_role(PRODUCTION_SLOT)}", "{_role(canary_slot)}"'
    summary = (
        "requests = sum(itemCount), sampled = count(), failures = sumif(itemCount, failed), "
        "p95_ms = percentilew(duration, itemCount, 95)"
    )
    return f"""let mcp = requests
| where isnotempty(customDimensions["{ATTR_METHOD}"]) and cloud_RoleName in ({roles})
| extend slot = replace_string(cloud_RoleName, "{SERVICE_NAME_PREFIX}", ""), tool = tostring(customDimensions["{ATTR_TOOL}"])
| extend error_type = tostring(customDimensions["{DIM_ERROR_TYPE}"]), status = toint(resultCode)
| extend failed = error_type in ("{INTERNAL_ERROR}", "{TOOL_ERROR}")
    or (isnotempty(error_type) and not(error_type matches regex "^-?[0-9]+$"))
    or (status >= 500 and status <= 599);
let overall = mcp | summarize {summary} by slot | extend tool = "";
let per_tool = mcp | where isnotempty(tool) | summarize {summary} by slot, tool;
union overall, per_tool
| project slot, tool, requests, sampled, failures, p95_ms
| order by slot asc, tool asc"""


def is_failure(error_type: str | None, result_code: str | None) -> bool:
    """The query's ``failed`` for one row: its ``mcp.error.type`` and ``resultCode``."""
    if error_type in (INTERNAL_ERROR, TOOL_ERROR):
        return True
    if error_type and not _NUMERIC.match(error_type):
        return True  # an exception class
    return bool(result_code and _NUMERIC.match(result_code) and 500 <= int(result_code) <= 599)


def aggregate_rows(rows: Iterable[Mapping[str, Any]], canary_slot: str) -> dict[str, Any]:
    """:func:`window_query` evaluated over ``requests`` rows, as the query API's response body (``{"tables": ...}``).

    Rows are mappings with the table's columns (``cloud_RoleName``, ``customDimensions``, ``itemCount``,
    ``duration`` in ms, ``resultCode``); for checking the gate end to end where no Log Analytics exists.
    The p95 is the weighted nearest rank (Kusto's ``percentilew`` estimates the same figure).
    """
    roles = {_role(PRODUCTION_SLOT), _role(canary_slot)}
    groups: dict[tuple[str, str], list[tuple[float, int, bool]]] = {}
    for row in rows:
        dimensions = row.get("customDimensions") or {}
        if not dimensions.get(ATTR_METHOD) or row.get("cloud_RoleName") not in roles:
            continue
        slot = row["cloud_RoleName"].replace(SERVICE_NAME_PREFIX, "")
        sample = (
            float(row["duration"]),
            int(row.get("itemCount") or 1),
            is_failure(dimensions.get(DIM_ERROR_TYPE), row.get("resultCode")),
        )
        groups.setdefault((slot, ""), []).append(sample)
        if tool := dimensions.get(ATTR_TOOL):
            groups.setdefault((slot, tool), []).append(sample)
    table_rows = []
    for (slot, tool), samples in sorted(groups.items()):
        total = sum(weight for _, weight, _ in samples)
        rank, p95 = 0.95 * total, 0.0
        seen = 0
        for duration, weight, _ in sorted(samples):
            seen += weight
            if seen >= rank:
                p95 = duration
                break
        failures = sum(weight for _, weight, failed in samples if failed)
        table_rows.append([slot, tool, total, len(samples), failures, p95])
    columns = [{"name": name, "type": kind} for name, kind in COLUMNS]
    return {"tables": [{"name": "PrimaryResult", "columns": columns, "rows": table_rows}]}


@dataclass(frozen=True)
class Side:
    """One slot's figures in the window (overall or for one tool)."""

    requests: int
    sampled: int
    failures: int
    p95_ms: float

    @property
    def error_rate_pct(self) -> float:
        return 100.0 * self.failures / self.requests if self.requests else 0.0

    def __str__(self) -> str:
        return (
            f"{self.requests} requests ({self.sampled} sampled), {self.error_rate_pct:.2f}% failed, "
            f"p95 {self.p95_ms:.0f} ms"
        )


class Outcome(enum.Enum):
    PROMOTE = "promote"
    ROLL_BACK = "roll back"
    NOT_ENOUGH_DATA = "not enough data"


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    reasons: tuple[str, ...]
    production: Side | None
    canary: Side | None
    # Tool -> (production, canary); either may be missing.
    tools: Mapping[str, tuple[Side | None, Side | None]] = field(default_factory=dict)

    @property
    def canary_share_pct(self) -> float | None:
        """The canary's share of both sides' requests: uneven against the routing rule when clients keep cookies."""
        if self.production is None or self.canary is None:
            return None
        return 100.0 * self.canary.requests / (self.production.requests + self.canary.requests)

    def report(self, canary_slot: str) -> str:
        lines = [f"verdict: {self.outcome.value}"]
        lines += [f"  - {reason}" for reason in self.reasons]
        lines.append(f"  {PRODUCTION_SLOT}: {self.production or 'no requests'}")
        lines.append(f"  {canary_slot}: {self.canary or 'no requests'}")
        if (share := self.canary_share_pct) is not None:
            lines.append(f"  {canary_slot} served {share:.1f}% of the requests")
        for tool, (production, canary) in sorted(self.tools.items()):
            lines.append(
                f"  tool {tool}: {PRODUCTION_SLOT} {production or 'no requests'}; "
                f"{canary_slot} {canary or 'no requests'}"
            )
        return "\n".join(lines)


def figures(result: Any) -> dict[tuple[str, str], Side]:
    """(slot, tool) -> :class:`Side` from the query's result (its first table); {} without one."""
    tables = list(result)
    if not tables:
        return {}
    table = tables[0]
    missing = [name for name, _ in COLUMNS if name not in table.columns]
    if missing:
        raise ValueError(f"the query answered without the column(s) {', '.join(missing)}; got {table.columns}")
    found = {}
    for row in table.rows:
        p95 = row["p95_ms"]
        found[(row["slot"], row["tool"])] = Side(
            requests=int(row["requests"] or 0),
            sampled=int(row["sampled"] or 0),
            failures=int(row["failures"] or 0),
            p95_ms=float(p95) if p95 is not None and not math.isnan(float(p95)) else 0.0,
        )
    return found


def _breaches(what: str, production: Side, canary: Side, policy: CanaryPolicy) -> list[str]:
    found = []
    points = canary.error_rate_pct - production.error_rate_pct
    if points > policy.max_error_rate_points:
        found.append(
            f"{what}: error rate {canary.error_rate_pct:.2f}% against {production.error_rate_pct:.2f}% in production, "
            f"{points:.2f} points more (at most {policy.max_error_rate_points:g} allowed)"
        )
    ratio = max(canary.p95_ms, P95_FLOOR_MS) / max(production.p95_ms, P95_FLOOR_MS)
    if ratio > policy.max_p95_ratio:
        found.append(
            f"{what}: p95 {canary.p95_ms:.0f} ms against {production.p95_ms:.0f} ms in production, "
            f"{ratio:.2f} times (at most {policy.max_p95_ratio:g} allowed)"
        )
    return found


def decide(result: Any, policy: CanaryPolicy, canary_slot: str) -> Verdict:
    """The verdict on one query result (a ``LogsQueryResult``, or a ``LogsQueryPartialResult``)."""
    partial = getattr(result, "partial_error", None)
    sides = figures(result)
    production, canary = sides.get((PRODUCTION_SLOT, "")), sides.get((canary_slot, ""))
    tools = {tool: (sides.get((PRODUCTION_SLOT, tool)), sides.get((canary_slot, tool))) for _, tool in sides if tool}

    def verdict(outcome: Outcome, reasons: list[str]) -> Verdict:
        return Verdict(outcome, tuple(reasons), production, canary, tools)

    if partial is not None:
        return verdict(Outcome.NOT_ENOUGH_DATA, [f"the query returned partial data only: {partial.message}"])
    short = [
        f"{name} has {side.sampled if side else 0} sampled requests, {policy.min_requests} needed"
        for name, side in ((PRODUCTION_SLOT, production), (canary_slot, canary))
        if side is None or side.sampled < policy.min_requests
    ]
    if short:
        return verdict(Outcome.NOT_ENOUGH_DATA, short)
    assert production is not None and canary is not None
    breaches = _breaches("overall", production, canary, policy)
    for tool, (tool_production, tool_canary) in sorted(tools.items()):
        if tool_production is None or tool_canary is None:
            continue
        if min(tool_production.sampled, tool_canary.sampled) >= policy.min_requests:
            breaches += _breaches(f"tool {tool}", tool_production, tool_canary, policy)
    if breaches:
        return verdict(Outcome.ROLL_BACK, breaches)
    return verdict(Outcome.PROMOTE, [])


Query = Callable[[datetime, datetime], Any]


def observe(
    policy: CanaryPolicy,
    query: Query,
    canary_slot: str,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    sleep: Callable[[float], None] = time.sleep,
    say: Callable[[str], None] = lambda line: print(line, flush=True),  # a pipe to pulumi: each line as it comes
) -> Verdict:
    """Query and decide until a verdict holds (module docstring); ``query(start, end)`` runs one query."""
    start = clock()
    promote_at = start + timedelta(minutes=policy.minutes) + INGESTION_ALLOWANCE
    give_up_at = start + timedelta(minutes=2 * policy.minutes) + INGESTION_ALLOWANCE
    say(
        f"canary: observing {canary_slot} against {PRODUCTION_SLOT} from {start:%H:%M:%S} UTC; promotion at the "
        f"earliest at {promote_at:%H:%M:%S}, roll back without enough data at {give_up_at:%H:%M:%S}"
    )
    while True:
        now = clock()
        verdict = decide(query(start, now), policy, canary_slot)
        waiting = verdict.outcome is Outcome.PROMOTE and now < promote_at
        say(
            f"canary: {now:%H:%M:%S} {PRODUCTION_SLOT}: {verdict.production or 'no requests'} | "
            f"{canary_slot}: {verdict.canary or 'no requests'} -> {'healthy so far' if waiting else verdict.outcome.value}"
        )
        if verdict.outcome is Outcome.ROLL_BACK or now >= give_up_at:
            return verdict
        if verdict.outcome is Outcome.PROMOTE and now >= promote_at:
            return verdict
        sleep(max(1.0, min(POLL_INTERVAL, give_up_at - now).total_seconds()))


def _query_client(app_insights_id: str, canary_slot: str) -> Query:
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
    from azure.identity import AzureCliCredential
    from azure.monitor.query import LogsQueryClient, LogsQueryPartialResult

    client = LogsQueryClient(AzureCliCredential())
    kql = window_query(canary_slot)

    def query(start: datetime, end: datetime) -> Any:
        try:
            return client.query_resource(app_insights_id, kql, timespan=(start, end))
        except ClientAuthenticationError:  # no `az login`, or no access: waiting will not help
            raise
        except HttpResponseError as error:  # a failed poll is no data; the deadline still rolls back
            return LogsQueryPartialResult(partial_error=error)

    return query


def main(argv: list[str] | None = None, query: Query | None = None, **observe_options: Any) -> int:
    parser = argparse.ArgumentParser(prog="python -m components.canary_gate", description=__doc__.splitlines()[0])
    parser.add_argument("--app-insights", required=True, help="resource id of the Application Insights component")
    parser.add_argument("--slot", required=True, help="the canary's deployment slot")
    parser.add_argument("--percent", type=int, required=True)
    parser.add_argument("--minutes", type=int, required=True)
    parser.add_argument("--max-error-rate-points", type=float, required=True)
    parser.add_argument("--max-p95-ratio", type=float, required=True)
    parser.add_argument("--min-requests", type=int, required=True)
    args = parser.parse_args(argv)
    try:
        policy = CanaryPolicy(
            percent=args.percent,
            minutes=args.minutes,
            max_error_rate_points=args.max_error_rate_points,
            max_p95_ratio=args.max_p95_ratio,
            min_requests=args.min_requests,
        )
        _role(args.slot)
    except ValueError as error:
        parser.error(str(error))
    if query is None:
        query = _query_client(args.app_insights, args.slot)
    try:
        verdict = observe(policy, query, args.slot, **observe_options)
    except Exception as error:  # noqa: BLE001 - e.g. no `az login`: the release stops and rolls back, saying why
        print(f"canary: the gate could not read Application Insights: {error}", file=sys.stderr)
        return 2
    if verdict.outcome is Outcome.PROMOTE:
        print("canary: " + verdict.report(args.slot).replace("\n", "\ncanary: "))
        return GATE_PROMOTE
    print("canary: " + verdict.report(args.slot).replace("\n", "\ncanary: "), file=sys.stderr)
    return GATE_ROLL_BACK if verdict.outcome is Outcome.ROLL_BACK else GATE_NOT_ENOUGH_DATA


if __name__ == "__main__":
    sys.exit(main())
