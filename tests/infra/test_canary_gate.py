"""The canary gate: its KQL against the App Insights schema, and its decisions on results shaped as the client's.

Every result here is built by azure-monitor-query itself from a query API
response body (``LogsQueryResult._from_generated`` /
``LogsQueryPartialResult._from_generated``, what ``query_resource`` returns),
so the gate reads exactly the objects it reads against Azure.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from azure.monitor.query import LogsQueryError, LogsQueryPartialResult, LogsQueryResult

from components.canary import GATE_NOT_ENOUGH_DATA, GATE_PROMOTE, GATE_ROLL_BACK, CanaryPolicy
from components.canary_gate import (
    COLUMNS,
    INGESTION_ALLOWANCE,
    Outcome,
    aggregate_rows,
    decide,
    is_failure,
    main,
    observe,
    window_query,
)
from tests.infra.kusto.checker import kql_diagnostics

POLICY = CanaryPolicy(percent=10, minutes=10, max_error_rate_points=1.0, max_p95_ratio=1.5, min_requests=200)


def body(*rows: list) -> dict:
    """A query API response body with the gate's columns and ``rows``."""
    columns = [{"name": name, "type": kind} for name, kind in COLUMNS]
    return {"tables": [{"name": "PrimaryResult", "columns": columns, "rows": list(rows)}]}


def result(*rows: list) -> LogsQueryResult:
    return LogsQueryResult._from_generated(body(*rows))


# slot, tool, requests, sampled, failures, p95_ms
PRODUCTION = ["production", "", 9000, 9000, 9, 120.0]
CANARY = ["staging", "", 1000, 1000, 2, 130.0]


# ---------------------------------------------------------------------------
# The query


def test_the_query_is_valid_kql_against_the_app_insights_tables():
    diagnostics = kql_diagnostics({"canary": window_query("staging")})["canary"]
    assert [d for d in diagnostics if d["severity"] == "Error"] == []


def test_the_query_reads_both_slots_by_role_name_and_refuses_an_odd_slot_name():
    query = window_query("canary-2")
    assert 'cloud_RoleName in ("mcp-server-production", "mcp-server-canary-2")' in query
    with pytest.raises(ValueError, match="slot must be a deployment slot name"):
        window_query('staging") or 1 == 1 //')


@pytest.mark.parametrize(
    ("error_type", "result_code", "failed"),
    [
        (None, "0", False),
        ("-32603", "0", True),  # internal error
        ("tool_error", "0", True),  # a tool that raised, as the SDK answers it
        ("RuntimeError", "0", True),  # an unhandled exception
        ("-32602", "0", False),  # the caller's invalid params
        ("-32601", "0", False),
        (None, "503", True),
        (None, "404", False),
    ],
)
def test_what_counts_as_a_failure(error_type, result_code, failed):
    assert is_failure(error_type, result_code) is failed


# ---------------------------------------------------------------------------
# The decision


def test_a_canary_as_healthy_as_production_is_promoted():
    verdict = decide(result(PRODUCTION, CANARY), POLICY, "staging")
    assert verdict.outcome is Outcome.PROMOTE
    assert verdict.production.error_rate_pct == pytest.approx(0.1)
    assert verdict.canary.error_rate_pct == pytest.approx(0.2)
    assert verdict.canary_share_pct == pytest.approx(10.0)


def test_an_error_rate_beyond_the_allowed_points_rolls_back_with_both_figures():
    canary = ["staging", "", 1000, 1000, 15, 125.0]  # 1.5% against 0.1%: 1.4 points
    verdict = decide(result(PRODUCTION, canary), POLICY, "staging")
    assert verdict.outcome is Outcome.ROLL_BACK
    assert verdict.reasons == (
        "overall: error rate 1.50% against 0.10% in production, 1.40 points more (at most 1 allowed)",
    )
    report = verdict.report("staging")
    assert "production: 9000 requests (9000 sampled), 0.10% failed, p95 120 ms" in report
    assert "staging: 1000 requests (1000 sampled), 1.50% failed, p95 125 ms" in report


def test_a_slower_p95_beyond_the_ratio_rolls_back():
    canary = ["staging", "", 1000, 1000, 1, 200.0]
    verdict = decide(result(PRODUCTION, canary), POLICY, "staging")
    assert verdict.outcome is Outcome.ROLL_BACK
    assert verdict.reasons == ("overall: p95 200 ms against 120 ms in production, 1.67 times (at most 1.5 allowed)",)


def test_one_slow_tool_rolls_back_when_both_sides_have_its_sample():
    rows = [
        PRODUCTION,
        CANARY,
        ["production", "lookup_fact", 3000, 3000, 0, 40.0],
        ["staging", "lookup_fact", 300, 300, 0, 90.0],
        ["production", "echo", 6000, 6000, 9, 130.0],
        ["staging", "echo", 700, 700, 2, 131.0],
    ]
    verdict = decide(result(*rows), POLICY, "staging")
    assert verdict.outcome is Outcome.ROLL_BACK
    assert verdict.reasons == (
        "tool lookup_fact: p95 90 ms against 40 ms in production, 2.25 times (at most 1.5 allowed)",
    )
    assert "tool lookup_fact: production 3000 requests" in verdict.report("staging")


def test_a_tool_below_the_minimum_sample_on_either_side_does_not_decide():
    rows = [
        PRODUCTION,
        CANARY,
        ["production", "lookup_fact", 3000, 3000, 0, 40.0],
        ["staging", "lookup_fact", 50, 50, 25, 900.0],
    ]
    assert decide(result(*rows), POLICY, "staging").outcome is Outcome.PROMOTE


def test_rates_not_counts_decide_an_uneven_split():
    # Cookie-pinned clients left the canary 3% of the requests: fewer failures there would mislead a count, and
    # more failures than production's in count would too; the rates are what is compared.
    production = ["production", "", 40000, 40000, 400, 100.0]  # 1.0%
    canary = ["staging", "", 1240, 1240, 24, 104.0]  # 1.9%: within 1 point
    verdict = decide(result(production, canary), POLICY, "staging")
    assert verdict.outcome is Outcome.PROMOTE
    assert verdict.canary_share_pct == pytest.approx(3.0, abs=0.1)
    worse = ["staging", "", 1240, 1240, 40, 104.0]  # 3.2%
    assert decide(result(production, worse), POLICY, "staging").outcome is Outcome.ROLL_BACK


def test_sampling_weights_count_and_the_minimum_is_on_sampled_rows():
    # 250 rows each standing for 20 requests: 5000 requests, enough rows; 150 rows of 40 would not be.
    production = ["production", "", 5000, 250, 0, 100.0]
    assert decide(result(production, ["staging", "", 800, 250, 0, 100.0]), POLICY, "staging").outcome is Outcome.PROMOTE
    few_rows = decide(result(production, ["staging", "", 6000, 150, 0, 100.0]), POLICY, "staging")
    assert few_rows.outcome is Outcome.NOT_ENOUGH_DATA
    assert few_rows.reasons == ("staging has 150 sampled requests, 200 needed",)


def test_sub_millisecond_latencies_are_compared_at_the_floor():
    production = ["production", "", 9000, 9000, 0, 0.4]
    canary = ["staging", "", 1000, 1000, 0, 3.0]  # 7.5 times, all of it below the noise floor
    assert decide(result(production, canary), POLICY, "staging").outcome is Outcome.PROMOTE


@pytest.mark.parametrize(
    ("response", "reasons"),
    [
        ({}, ("production has 0 sampled requests, 200 needed", "staging has 0 sampled requests, 200 needed")),
        (
            {"tables": []},
            ("production has 0 sampled requests, 200 needed", "staging has 0 sampled requests, 200 needed"),
        ),
        (body(), ("production has 0 sampled requests, 200 needed", "staging has 0 sampled requests, 200 needed")),
        (body(PRODUCTION), ("staging has 0 sampled requests, 200 needed",)),
        (body(CANARY), ("production has 0 sampled requests, 200 needed",)),
        (body(PRODUCTION, ["staging", "", 120, 120, 60, 900.0]), ("staging has 120 sampled requests, 200 needed",)),
    ],
)
def test_empty_or_thin_data_is_not_enough_for_any_verdict(response, reasons):
    verdict = decide(LogsQueryResult._from_generated(response), POLICY, "staging")
    assert verdict.outcome is Outcome.NOT_ENOUGH_DATA
    assert verdict.reasons == reasons


def test_a_partial_result_is_never_decided_on():
    response = {
        **body(PRODUCTION, ["staging", "", 1000, 1000, 900, 5000.0]),
        "error": {"code": "PartialError", "message": "Query exceeded the memory limit", "details": []},
    }
    partial = LogsQueryPartialResult._from_generated(response, LogsQueryError)
    verdict = decide(partial, POLICY, "staging")
    assert verdict.outcome is Outcome.NOT_ENOUGH_DATA
    assert verdict.reasons == ("the query returned partial data only: Query exceeded the memory limit",)


def test_a_table_without_the_gates_columns_is_an_error():
    response = {"tables": [{"name": "PrimaryResult", "columns": [{"name": "slot", "type": "string"}], "rows": []}]}
    with pytest.raises(ValueError, match="without the column"):
        decide(LogsQueryResult._from_generated(response), POLICY, "staging")


def test_aggregate_rows_answers_in_the_gates_columns():
    rows = [
        {"cloud_RoleName": "mcp-server-staging", "customDimensions": {"mcp.method.name": "tools/call",
         "gen_ai.tool.name": "echo", "mcp.error.type": "tool_error"}, "itemCount": 1, "duration": 7.0, "resultCode": "0"},
        {"cloud_RoleName": "mcp-server-staging", "customDimensions": {"mcp.method.name": "tools/list"},
         "itemCount": 3, "duration": 2.0, "resultCode": "0"},
        {"cloud_RoleName": "mcp-server-staging", "customDimensions": {}, "itemCount": 1, "duration": 1.0},  # GET /health
        {"cloud_RoleName": "mcp-server-local", "customDimensions": {"mcp.method.name": "ping"}, "duration": 1.0},
    ]  # fmt: skip
    table = LogsQueryResult._from_generated(aggregate_rows(rows, "staging")).tables[0]
    assert table.columns == [name for name, _ in COLUMNS]
    assert [list(row) for row in table.rows] == [["staging", "", 4, 2, 1, 7.0], ["staging", "echo", 1, 1, 1, 7.0]]


# ---------------------------------------------------------------------------
# The observation over time


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 7, 28, 12, 0, tzinfo=UTC)
        self.slept: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)


def _observe(answers, clock: Clock, said: list[str]):
    windows = []

    def query(start, end):
        windows.append((start, end))
        return answers(end - start)

    verdict = observe(POLICY, query, "staging", clock=clock, sleep=clock.sleep, say=said.append)
    return verdict, windows


def test_a_healthy_canary_is_promoted_only_after_the_window_and_the_ingestion_allowance():
    clock, said = Clock(), []
    start = clock.now
    verdict, windows = _observe(lambda elapsed: result(PRODUCTION, CANARY), clock, said)
    assert verdict.outcome is Outcome.PROMOTE
    assert clock.now == start + timedelta(minutes=10) + INGESTION_ALLOWANCE
    assert all(window_start == start for window_start, _ in windows)  # the window always starts at the routing
    assert len(windows) == 14 and "promotion at the earliest at 12:13:00" in said[0]
    assert all(line.endswith("-> healthy so far") for line in said[1:-1])
    assert "staging: 1000 requests (1000 sampled), 0.20% failed, p95 130 ms -> promote" in said[-1]


def test_a_failing_canary_is_rolled_back_as_soon_as_the_sample_shows_it():
    clock, said = Clock(), []
    failing = ["staging", "", 400, 400, 40, 130.0]

    def answers(elapsed):
        return result(PRODUCTION, failing) if elapsed >= timedelta(minutes=2) else result(PRODUCTION)

    verdict, windows = _observe(answers, clock, said)
    assert verdict.outcome is Outcome.ROLL_BACK
    assert len(windows) == 3 and windows[-1][1] - windows[-1][0] == timedelta(minutes=2)


def test_without_enough_data_the_gate_waits_then_gives_up_at_the_deadline():
    clock, said = Clock(), []
    start = clock.now
    verdict, _windows = _observe(lambda elapsed: result(PRODUCTION, ["staging", "", 50, 50, 0, 100.0]), clock, said)
    assert verdict.outcome is Outcome.NOT_ENOUGH_DATA
    assert clock.now == start + timedelta(minutes=20) + INGESTION_ALLOWANCE
    assert "roll back without enough data at 12:23:00" in said[0]


def test_data_arriving_late_is_still_decided_on_before_the_deadline():
    clock, said = Clock(), []

    def answers(elapsed):
        return result(PRODUCTION, CANARY) if elapsed >= timedelta(minutes=15) else result(PRODUCTION)

    verdict, _windows = _observe(answers, clock, said)
    assert verdict.outcome is Outcome.PROMOTE


# ---------------------------------------------------------------------------
# The command line the release script runs

ARGS = [
    "--app-insights", "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Insights/components/ai",
    "--slot", "staging", "--percent", "10", "--minutes", "10", "--max-error-rate-points", "1",
    "--max-p95-ratio", "1.5", "--min-requests", "200",
]  # fmt: skip


@pytest.mark.parametrize(
    ("canary", "status", "stream", "line"),
    [
        (CANARY, GATE_PROMOTE, "out", "canary: verdict: promote"),
        (["staging", "", 1000, 1000, 50, 130.0], GATE_ROLL_BACK, "err", "canary: verdict: roll back"),
        (["staging", "", 10, 10, 0, 130.0], GATE_NOT_ENOUGH_DATA, "err", "canary: verdict: not enough data"),
    ],
)
def test_the_gate_exits_with_its_verdict_and_prints_both_sides(capsys, canary, status, stream, line):
    clock = Clock()
    code = main(ARGS, query=lambda start, end: result(PRODUCTION, canary), clock=clock, sleep=clock.sleep)
    assert code == status
    captured = capsys.readouterr()
    text = captured.out if stream == "out" else captured.err
    assert line in text
    assert "canary:   production: 9000 requests (9000 sampled), 0.10% failed, p95 120 ms" in text


def test_a_gate_that_cannot_query_says_why_and_fails(capsys):
    def query(start, end):
        raise RuntimeError("Please run 'az login' to set up an account")

    assert main(ARGS, query=query) == 2
    assert "could not read Application Insights: Please run 'az login'" in capsys.readouterr().err


def test_bad_gate_arguments_are_named(capsys):
    with pytest.raises(SystemExit):
        main([*ARGS[:-2], "--min-requests", "0"], query=lambda start, end: result())
    assert "canaryMinRequests" in capsys.readouterr().err
