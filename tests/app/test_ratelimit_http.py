"""Rate limits over HTTP: two app processes behind the round-robin front end, sharing one real Redis.

A caller gets exactly its limit per window across both processes and the next call is refused (429,
Retry-After, JSON-RPC -32010 naming the limit), in both protocol eras; other callers, other tools and
``tools/list`` are unaffected; a total limit holds across callers; an anonymous caller is the front end's
address, whatever it prepends to X-Forwarded-For. With Redis stopped every request is still answered: each
process applies its share of the limit (fail open) or refuses limited calls with 503 (fail closed), and the
shared counters come back with Redis.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.protocol import RATE_LIMITED
from tests.app.conftest import modern_headers, modern_request
from tests.app.redis_server import RedisServer, running_redis
from tests.app.round_robin import FrontEnd, round_robin
from tests.app.serving import running_server
from tests.app.test_identity import signed_in

PER_CALLER = 5
TOTAL = 6
LIMITS = {"whoami": {"perCaller": f"{PER_CALLER}/hour"}, "lookup_fact": {"total": f"{TOTAL}/hour"}}
HOUR = 3600


@contextlib.contextmanager
def _fleet(redis: RedisServer, **env: str) -> Iterator[tuple[FrontEnd, list[Any]]]:
    common = {
        "MCP_RATE_LIMITS": json.dumps(LIMITS),
        "MCP_REDIS_URL": redis.url,
        "MCP_RATE_LIMIT_INSTANCES": "2",
        "WEBSITE_AUTH_ENABLED": "True",
        "WEBSITE_SITE_NAME": "ratelimit-tests",  # on "App Service": anonymous callers are X-Forwarded-For's last entry
        **env,
    }
    with (
        running_server(env={**common, "WEBSITE_INSTANCE_ID": "rl-a"}) as a,
        running_server(env={**common, "WEBSITE_INSTANCE_ID": "rl-b"}) as b,
        round_robin([a.url, b.url]) as front,
    ):
        yield front, [a, b]


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server


@pytest.fixture(scope="module")
def fleet(redis: RedisServer) -> Iterator[FrontEnd]:
    with _fleet(redis) as (front, _):
        yield front


@pytest.fixture
def http(fleet: FrontEnd) -> Iterator[httpx.Client]:
    _fresh_window(HOUR, needed_s=60)
    with httpx.Client(base_url=fleet.url, timeout=30) as client:
        yield client


def _fresh_window(period_s: int, needed_s: float) -> None:
    """Wait for the next window when this one ends too soon for a test to stay inside it."""
    left = period_s - time.time() % period_s
    if left < needed_s:
        time.sleep(left + 0.05)


def caller() -> dict[str, str]:
    oid = str(uuid.uuid4())
    return signed_in(oid, f"{oid[:8]}@contoso.example")


def call(http: httpx.Client, tool: str, headers: dict[str, str], arguments: dict | None = None, rid: int = 1):
    body = modern_request("tools/call", {"name": tool, "arguments": arguments or {}}, request_id=rid)
    return http.post("/mcp", content=json.dumps(body), headers={**modern_headers("tools/call", tool), **headers})


def legacy_call(http: httpx.Client, tool: str, headers: dict[str, str], rid: int = 1):
    body = {"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": {"name": tool, "arguments": {}}}
    base = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    return http.post("/mcp", content=json.dumps(body), headers={**base, **headers})


def assert_refused(response: httpx.Response, tool: str, scope: str, rid: int = 1) -> dict:
    assert response.status_code == 429, response.text
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= HOUR
    reply = response.json()
    assert reply["id"] == rid
    error = reply["error"]
    assert error["code"] == RATE_LIMITED
    assert error["data"] == {"tool": tool, "scope": scope, "limit": LIMITS[tool][scope], "retryAfter": retry_after}
    assert f"tool {tool} allows {LIMITS[tool][scope]}" in error["message"]
    assert f"retry after {retry_after} s" in error["message"]
    return error


def test_a_caller_gets_exactly_its_limit_across_both_processes_then_429_with_retry_after(http: httpx.Client):
    alice = caller()
    served = [call(http, "whoami", alice, rid=n) for n in range(PER_CALLER)]
    assert [r.status_code for r in served] == [200] * PER_CALLER
    assert {r.headers["x-served-by"] for r in served} == {"rl-a", "rl-b"}
    assert all("error" not in r.json() and not r.json()["result"].get("isError") for r in served)
    for n in range(3):  # on either process
        error = assert_refused(call(http, "whoami", alice, rid=100 + n), "whoami", "perCaller", rid=100 + n)
        assert "per caller" in error["message"]


def test_other_callers_other_tools_and_tools_list_are_unaffected(http: httpx.Client):
    alice, bob = caller(), caller()
    for _ in range(PER_CALLER):
        assert call(http, "whoami", alice).status_code == 200
    assert_refused(call(http, "whoami", alice), "whoami", "perCaller")
    assert [call(http, "whoami", bob).status_code for _ in range(PER_CALLER)] == [200] * PER_CALLER
    assert [call(http, "echo", alice, {"message": "hi"}).status_code for _ in range(3 * PER_CALLER)] == [200] * (
        3 * PER_CALLER
    )
    list_headers = {**modern_headers("tools/list"), **alice}
    listed = [
        http.post("/mcp", content=json.dumps(modern_request("tools/list")), headers=list_headers)
        for _ in range(2 * PER_CALLER)
    ]
    assert [r.status_code for r in listed] == [200] * (2 * PER_CALLER)


def test_a_total_limit_holds_across_callers(http: httpx.Client, redis: RedisServer):
    _flush(redis)  # the total is the fleet's: start it from nothing in this window
    callers = [caller() for _ in range(3)]
    answers = [call(http, "lookup_fact", callers[n % 3], {"topic": "azure"}) for n in range(2 * TOTAL)]
    assert [r.status_code for r in answers] == [200] * TOTAL + [429] * TOTAL
    for refused in answers[TOTAL:]:
        assert "in total for all callers" in assert_refused(refused, "lookup_fact", "total")["message"]


def test_a_legacy_client_gets_the_same_refusal(http: httpx.Client):
    carol = caller()
    assert [legacy_call(http, "whoami", carol).status_code for _ in range(PER_CALLER)] == [200] * PER_CALLER
    assert_refused(legacy_call(http, "whoami", carol, rid=7), "whoami", "perCaller", rid=7)
    assert_refused(call(http, "whoami", carol), "whoami", "perCaller")  # one limit, whichever era asks


def test_an_anonymous_caller_is_the_front_ends_address_not_what_it_prepends(http: httpx.Client):
    address = f"203.0.113.{uuid.uuid4().int % 250 + 1}"
    for n in range(PER_CALLER):  # a new spoofed first entry each time: still one caller
        assert call(http, "whoami", {"X-Forwarded-For": f"10.9.9.{n}, {address}:{40000 + n}"}).status_code == 200
    assert_refused(call(http, "whoami", {"X-Forwarded-For": f"192.0.2.1, {address}:1"}), "whoami", "perCaller")
    assert call(http, "whoami", {"X-Forwarded-For": f"{address}, 198.51.100.7:1"}).status_code == 200


def _flush(redis: RedisServer) -> None:
    import redis as redis_client

    with redis_client.Redis.from_url(redis.url) as client:
        client.flushall()


def _answers(http: httpx.Client, tool: str, headers: dict[str, str], count: int) -> list[int]:
    statuses = []
    for _ in range(count):
        response = call(http, tool, headers)
        assert response.headers["content-type"] == "application/json"
        assert "error" in response.json() or "result" in response.json()  # every request is answered
        statuses.append(response.status_code)
    return statuses


def test_without_redis_each_process_applies_its_share_and_the_shared_counters_return_with_redis():
    _fresh_window(HOUR, needed_s=90)
    with running_redis() as redis, _fleet(redis) as (front, processes), httpx.Client(base_url=front.url) as http:
        alice = caller()
        assert _answers(http, "whoami", alice, PER_CALLER + 1) == [200] * PER_CALLER + [429]

        redis.stop()
        # Each of the two processes now allows PER_CALLER // 2 on its own: 2 + 2 of 5 (fewer than the fleet's 5).
        statuses = _answers(http, "whoami", caller(), 3 * PER_CALLER)
        assert statuses.count(200) == 2 * (PER_CALLER // 2) and statuses.count(429) == len(statuses) - 4
        assert _answers(http, "echo", caller(), 4) == [200] * 4  # an unlimited tool never notices
        time.sleep(1.2)  # past the retry interval: another failed attempt, still logged only once
        assert _answers(http, "whoami", caller(), 4) == [200, 200, 200, 200]
        for process in processes:
            assert process.output().count("Redis is unreachable") == 1

        redis.start()
        time.sleep(1.2)
        assert _answers(http, "whoami", caller(), PER_CALLER + 2) == [200] * PER_CALLER + [429, 429]
        for process in processes:
            assert "Redis is reachable again" in process.output()


def test_fail_closed_refuses_limited_calls_with_503_while_redis_is_down():
    with (
        running_redis() as redis,
        _fleet(redis, MCP_RATE_LIMITS_FAIL_CLOSED="true") as (front, _),
        httpx.Client(base_url=front.url) as http,
    ):
        assert call(http, "whoami", caller()).status_code == 200
        redis.stop()
        for _ in range(4):
            response = call(http, "whoami", caller())
            assert response.status_code == 503, response.text
            assert int(response.headers["retry-after"]) >= 1
            error = response.json()["error"]
            assert error["code"] == RATE_LIMITED and error["data"]["scope"] == "unavailable"
            assert "Rate limits unavailable" in error["message"]
        assert _answers(http, "echo", caller(), 2) == [200, 200]
        redis.start()
        time.sleep(1.2)
        assert call(http, "whoami", caller()).status_code == 200
