"""The canary drill: two builds of the server behind App Service's traffic routing, judged by their own telemetry.

Production runs the bundled demo; the staging slot runs first a build whose
``echo`` fails a third of its calls (tests/app/flaky_server.py), then a
healthy one. Both export to one local ingestion endpoint, as both slots
export to one Application Insights component. A stand-in of App Service's
routing rule (tests/app/slot_router.py) sends a share of requests to
staging and pins clients that keep cookies, as the platform does; most
clients keep none, as MCP SDK clients do. The ``requests`` rows the
exporter sent are mapped to the table's columns (as ingestion stores them:
``ai.cloud.role`` -> ``cloud_RoleName``, properties -> ``customDimensions``,
``100 / sampleRate`` -> ``itemCount``), the gate's own aggregation
(``aggregate_rows``, its query's semantics) turns them into the query API's
response, and the gate's command line decides on it: roll back the flaky
build, promote the healthy one.
"""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
from azure.monitor.query import LogsQueryResult

from components.canary import GATE_PROMOTE, GATE_ROLL_BACK
from components.canary_gate import aggregate_rows, main
from tests.app.flaky_server import SPEC as FLAKY_SERVER
from tests.app.serving import running_server
from tests.app.slot_router import PRODUCTION_ROUTING_NAME, slot_router
from tests.app.telemetry.ingestion import FakeIngestion, ingestion_env, mcp_request_rows
from tests.app.telemetry.recording import META, headers_for, tools_call
from tests.infra.test_canary_gate import Clock

PERCENT = 25
# A smaller sample than a real window holds, enough to decide on here. The drill varies failures, not latency
# (tests/infra/test_canary_gate.py decides on p95s): the ratio is loose, since the p95 of a few dozen sub-millisecond
# calls on shared cores is noise.
GATE_ARGS = [
    "--app-insights", "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Insights/components/ai",
    "--slot", "staging", "--percent", str(PERCENT), "--minutes", "5", "--max-error-rate-points", "1",
    "--max-p95-ratio", "20", "--min-requests", "20",
]  # fmt: skip
CLIENTS_WITHOUT_COOKIES, CLIENTS_WITH_COOKIES, CALLS_PER_CLIENT = 6, 2, 20
_DURATION = re.compile(r"^(\d+)\.(\d\d):(\d\d):(\d\d)\.(\d{3})$")


def requests_row(envelope: dict) -> dict:
    """An exported RequestData envelope as its ``requests`` row (the columns the gate reads)."""
    data = envelope["data"]["baseData"]
    days, hours, minutes, seconds, millis = map(int, _DURATION.match(data["duration"]).groups())
    return {
        "cloud_RoleName": envelope["tags"]["ai.cloud.role"],
        "customDimensions": data.get("properties", {}),
        "itemCount": round(100 / envelope.get("sampleRate", 100.0)),
        "duration": float((((days * 24 + hours) * 60 + minutes) * 60 + seconds) * 1000 + millis),
        "resultCode": data.get("responseCode"),
    }


@contextlib.contextmanager
def _servers(*options: dict) -> Iterator[list]:
    """``running_server(**o)`` for each of ``options``, started side by side (each start imports the exporter)."""
    managers = [running_server(**o) for o in options]
    with contextlib.ExitStack() as stack:
        with ThreadPoolExecutor(len(managers)) as pool:
            futures = [pool.submit(manager.__enter__) for manager in managers]
        for manager, future in zip(managers, futures, strict=True):
            if future.exception() is None:
                stack.push(manager.__exit__)
        yield [future.result() for future in futures]


def _traffic(front_url: str) -> int:
    """Clients calling ``echo`` through the router, interleaved; returns the calls made."""
    clients = [(httpx.Client(timeout=10), False) for _ in range(CLIENTS_WITHOUT_COOKIES)]
    clients += [(httpx.Client(timeout=10), True) for _ in range(CLIENTS_WITH_COOKIES)]
    ids = itertools.count(1)
    try:
        for _ in range(CALLS_PER_CLIENT):
            for client, keeps_cookies in clients:
                message = tools_call("echo", next(ids), meta=META, arguments={"message": "canary"})
                answer = client.post(front_url, json=message, headers=headers_for(message))
                assert answer.status_code == 200, answer.text
                if not keeps_cookies:
                    client.cookies.clear()
    finally:
        for client, _ in clients:
            client.close()
    return CALLS_PER_CLIENT * len(clients)


def _release(production_url: str, staging_url: str, ingestion: FakeIngestion, seed: int, capsys) -> tuple[int, str]:
    with ingestion.lock:
        ingestion.envelopes.clear()
    with slot_router(production_url, staging_url, PERCENT, seed) as front:
        calls = _traffic(front.mcp_url)
        staging_share = front.served["staging"] / calls
        assert front.served[PRODUCTION_ROUTING_NAME] + front.served["staging"] == calls
    ingestion.wait_for(lambda: len(mcp_request_rows(ingestion)) >= calls)
    rows = [requests_row(envelope) for envelope in mcp_request_rows(ingestion)]
    response = aggregate_rows(rows, "staging")
    clock = Clock()
    capsys.readouterr()
    status = main(
        GATE_ARGS,
        query=lambda start, end: LogsQueryResult._from_generated(response),
        clock=clock,
        sleep=clock.sleep,
    )
    captured = capsys.readouterr()
    # The pinned clients make the split uneven; the gate still had both sides' minimum sample to judge on.
    assert 0.05 < staging_share < 0.75
    return status, captured.out + captured.err


def test_the_gate_rolls_back_a_failing_build_and_promotes_a_healthy_one(tmp_path, capsys):
    ingestion = FakeIngestion()
    telemetry = ingestion_env(ingestion, tmp_path)
    try:
        with _servers(
            {"env": {**telemetry, "MCP_SLOT_NAME": "production"}},
            {"env": {**telemetry, "MCP_SLOT_NAME": "staging"}, "args": ["--server", FLAKY_SERVER]},
            {"env": {**telemetry, "MCP_SLOT_NAME": "staging"}},
        ) as (production, flaky, healthy):
            status, said = _release(production.url, flaky.url, ingestion, seed=7, capsys=capsys)
            assert status == GATE_ROLL_BACK, said
            assert re.search(r"overall: error rate \d+\.\d\d% against 0\.00% in production", said), said
            assert re.search(r"tool echo: error rate \d+\.\d\d% against 0\.00% in production", said), said

            status, said = _release(production.url, healthy.url, ingestion, seed=11, capsys=capsys)
            assert status == GATE_PROMOTE, said
            assert "verdict: promote" in said
            assert re.search(r"staging: \d+ requests \(\d+ sampled\), 0\.00% failed", said), said
    finally:
        ingestion.server.shutdown()
