"""Rate limits in process (app/ratelimit): the MCP_RATE_LIMITS spec, whom a call counts against, the leasing
limiter on a real Redis (accuracy across processes, Redis traffic), its settings, the Entra sign-in it picks
for Azure, start-up validation against the served tools, and refusals in telemetry.

Over HTTP, across two processes: tests/app/test_ratelimit_http.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator

import pytest
import redis as redis_sync
from redis_entraid.cred_provider import EntraIdCredentialsProvider

from app.main import create_app
from app.ratelimit import callers, limiter, spec
from app.ratelimit.limiter import RateLimitConfigError, RateLimiter
from app.ratelimit.spec import Rate, RateLimitSpecError, ToolLimits, check_tools, parse_rate_limits, to_json
from app.settings import SettingsError
from tests.app.redis_server import RedisServer, running_redis
from tests.app.serving import PROJECT_ROOT

# ---------------------------------------------------------------- the spec


def test_the_documented_example_parses():
    parsed = parse_rate_limits(
        '{"*": {"perCaller": "600/minute"}, "compute_primes": {"perCaller": "10/minute", "total": "1000/minute"}}'
    )
    assert parsed == {
        "*": ToolLimits("*", per_caller=Rate(600, 60)),
        "compute_primes": ToolLimits("compute_primes", per_caller=Rate(10, 60), total=Rate(1000, 60)),
    }


def test_every_unit_and_the_decoded_object_the_stack_passes():
    parsed = parse_rate_limits({"a": {"total": "1/second"}, "b": {"perCaller": " 7 / hour "}}, source="rateLimits")
    assert parsed["a"].total == Rate(1, 1) and parsed["b"].per_caller == Rate(7, 3600)
    assert parse_rate_limits(to_json(parsed)) == parsed


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("{", "MCP_RATE_LIMITS is not JSON"),
        ("[]", "MCP_RATE_LIMITS is a JSON list"),
        ('{"whoami": "10/minute"}', "MCP_RATE_LIMITS['whoami'] is '10/minute'; expected a JSON object"),
        ('{"whoami": {}}', "MCP_RATE_LIMITS['whoami'] is {}"),
        ('{"": {"total": "1/second"}}', "empty tool name"),
        ('{"whoami": {"perCaler": "1/second"}}', "unknown key(s) 'perCaler'; allowed: perCaller, total"),
        ('{"whoami": {"total": "0/minute"}}', "MCP_RATE_LIMITS['whoami'].total allows 0 calls"),
        ('{"whoami": {"total": "10/day"}}', "has the unit 'day'; expected 'N/second', 'N/minute' or 'N/hour'"),
        ('{"whoami": {"total": "ten/minute"}}', "MCP_RATE_LIMITS['whoami'].total is 'ten/minute'"),
        ('{"whoami": {"total": 10}}', "MCP_RATE_LIMITS['whoami'].total is 10"),
        ('{"whoami": {"perCaller": "-1/second"}}', "perCaller is '-1/second'"),
    ],
)
def test_a_bad_spec_is_refused_naming_the_entry_and_the_allowed_values(raw: str, says: str):
    with pytest.raises(RateLimitSpecError) as refused:
        parse_rate_limits(raw)
    assert says in str(refused.value)


def test_a_limit_on_a_tool_the_server_lacks_is_refused():
    every_second = {"total": "1/second"}
    limits = parse_rate_limits({"*": every_second, "whoami": every_second, "nope": {"total": "1/hour"}})
    check_tools({k: v for k, v in limits.items() if k != "nope"}, ["whoami", "echo"])
    unknown = r"names tool\(s\) the server does not have: nope; its tools: echo, whoami"
    with pytest.raises(RateLimitSpecError, match=unknown):
        check_tools(limits, ["whoami", "echo"])


def test_the_spec_module_imports_nothing_but_the_standard_library():
    # The Pulumi stack imports it to validate its rateLimits config: no Redis client, no MCP SDK.
    probe = (
        "import sys; import app.ratelimit.spec; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('redis', 'mcp', 'pydantic', 'opentelemetry')))"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------- the callers


def _headers(*forwarded: str) -> list[tuple[bytes, bytes]]:
    return [(b"host", b"x"), *((b"x-forwarded-for", value.encode()) for value in forwarded)]


@pytest.mark.parametrize(
    ("forwarded", "address"),
    [
        (("203.0.113.7:50123",), "203.0.113.7"),
        (("6.6.6.6, 203.0.113.7:50123",), "203.0.113.7"),  # the client's own entries come first
        (("6.6.6.6", "10.0.0.1, 203.0.113.7:1"), "203.0.113.7"),  # several headers: one list, in order
        (("[2001:db8::5]:443",), "2001:db8::5"),
        (("2001:db8::5",), "2001:db8::5"),
        (("203.0.113.7",), "203.0.113.7"),
    ],
)
def test_behind_app_services_front_end_the_address_is_the_last_forwarded_entry(forwarded, address):
    assert callers.client_address(_headers(*forwarded), "169.254.129.1", behind_front_end=True) == address


def test_elsewhere_the_address_is_the_tcp_peer_whatever_the_headers_say():
    assert callers.client_address(_headers("203.0.113.7"), "127.0.0.1", behind_front_end=False) == "127.0.0.1"
    assert callers.client_address(_headers(), "127.0.0.1", behind_front_end=True) == "127.0.0.1"


def test_a_signed_in_caller_is_its_principal_and_an_anonymous_one_its_address():
    from app.identity import Caller

    alice = Caller(id="oid-1", name="alice", idp="aad", roles=frozenset())
    assert callers.caller_key(alice, "203.0.113.7") == "aad:oid-1"
    assert callers.caller_key(None, "203.0.113.7") == "ip:203.0.113.7"


# ------------------------------------------------------------- the limiter


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server


@pytest.fixture
def flushed(redis: RedisServer) -> RedisServer:
    with redis_sync.Redis.from_url(redis.url) as client:
        client.flushall()
        client.config_resetstat()
    return redis


def _fleet(redis: RedisServer, limits: str, processes: int) -> list[RateLimiter]:
    """One limiter per simulated process, each with its own connection to the shared Redis."""
    env = {"MCP_RATE_LIMITS": limits, "MCP_REDIS_URL": redis.url, "MCP_RATE_LIMIT_INSTANCES": str(processes)}
    return [limiter.from_env(env) for _ in range(processes)]


async def _spend(fleet: list[RateLimiter], tool: str, caller: str, attempts: int, seed: int) -> int:
    """``attempts`` calls spread at random over the processes (some busier than others); how many were admitted."""
    gates = [process.gate(tool) for process in fleet]
    weights = [1 + n * 3 for n in range(len(gates))]
    rng = random.Random(seed)
    admitted = 0
    for _ in range(attempts):
        gate = rng.choices(gates, weights)[0]
        admitted += await gate.admit(caller) is None
    for process in fleet:
        await process.close()
    return admitted


def _lease_scripts_run(redis: RedisServer) -> int:
    with redis_sync.Redis.from_url(redis.url) as client:
        stats = client.info("commandstats")
    return sum(stats.get(name, {}).get("calls", 0) for name in ("cmdstat_evalsha", "cmdstat_eval"))


def test_a_large_limit_holds_within_five_percent_across_processes_on_few_redis_round_trips(flushed: RedisServer):
    fleet = _fleet(flushed, '{"whoami": {"total": "20000/hour"}}', processes=4)
    admitted = asyncio.run(_spend(fleet, "whoami", "ip:x", attempts=24000, seed=1))
    assert 0.95 * 20000 <= admitted <= 20000
    # A lease per 250 calls (20000 * 5% / 4), not a round trip per call.
    assert _lease_scripts_run(flushed) < 24000 / 100


def test_a_small_limit_leases_one_at_a_time_and_is_exact(flushed: RedisServer):
    fleet = _fleet(flushed, '{"whoami": {"perCaller": "7/hour"}}', processes=3)
    assert asyncio.run(_spend(fleet, "whoami", "aad:alice", attempts=50, seed=2)) == 7


def test_a_call_needs_room_in_every_limit_and_a_refusal_takes_nothing(flushed: RedisServer):
    (process,) = _fleet(flushed, '{"*": {"perCaller": "3/hour"}, "whoami": {"perCaller": "2/hour"}}', processes=1)

    async def run() -> list[str | None]:
        whoami, echo = process.gate("whoami"), process.gate("echo")
        outcomes = []
        for gate in (whoami, whoami, whoami, echo, echo):
            refusal = await gate.admit("aad:alice")
            outcomes.append(None if refusal is None else f"{refusal.tool}:{refusal.scope}")
        await process.close()
        return outcomes

    # The third whoami is refused by its own limit and spends nothing of "*": echo then has one call left.
    assert asyncio.run(run()) == [None, None, "whoami:perCaller", None, "*:perCaller"]


def test_without_redis_a_process_allows_its_share_over_instances_and_workers():
    env = {"MCP_RATE_LIMITS": '{"whoami": {"perCaller": "8/hour"}}', "MCP_RATE_LIMIT_INSTANCES": "2"}
    process = limiter.from_env({**env, "WEB_CONCURRENCY": "2"})

    async def admitted() -> int:
        gate = process.gate("whoami")
        return sum([await gate.admit("aad:alice") is None for _ in range(6)])

    assert process.local_mode and asyncio.run(admitted()) == 8 // (2 * 2)


def test_a_tool_without_a_limit_has_no_gate():
    process = RateLimiter(parse_rate_limits('{"whoami": {"total": "1/second"}}'))
    assert process.gate("echo") is None and process.gate("whoami") is not None


def test_retry_after_counts_the_whole_seconds_to_the_end_of_the_window(flushed: RedisServer):
    (process,) = _fleet(flushed, '{"whoami": {"total": "1/hour"}}', processes=1)

    async def run():
        gate = process.gate("whoami")
        assert await gate.admit("c") is None
        refusal = await gate.admit("c")
        await process.close()
        return refusal

    import time

    before = time.time()
    refusal = asyncio.run(run())
    assert refusal.status == 429 and refusal.retry_after >= 1
    assert abs(refusal.retry_after - (3600 - before % 3600)) <= 2


# ------------------------------------------------------------ the settings


def test_no_spec_no_limiter():
    assert limiter.from_env({}) is None


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"MCP_RATE_LIMIT_INSTANCES": "0"}, "MCP_RATE_LIMIT_INSTANCES='0' is not allowed; expected an integer 1..1000"),
        ({"MCP_RATE_LIMITS_FAIL_CLOSED": "yes"}, "FAIL_CLOSED='yes' is not allowed; expected true or false"),
        ({"MCP_RATE_LIMITS_FAIL_CLOSED": "true"}, "MCP_RATE_LIMITS_FAIL_CLOSED=true needs MCP_REDIS_URL"),
        ({"MCP_REDIS_URL": "http://cache:6379"}, "MCP_REDIS_URL='http://cache:6379' is not a Redis URL"),
    ],
)
def test_a_bad_setting_is_refused_naming_it(env: dict[str, str], says: str):
    with pytest.raises(RateLimitConfigError) as refused:
        limiter.from_env({"MCP_RATE_LIMITS": '{"whoami": {"total": "1/second"}}', **env})
    assert says in str(refused.value)


def test_a_rediss_url_without_a_password_signs_in_with_the_managed_identity():
    client = limiter.redis_client("rediss://mcp-cache.westeurope.redis.azure.net:10000", environ={})
    kwargs = client.connection_pool.connection_kwargs
    assert isinstance(kwargs["credential_provider"], EntraIdCredentialsProvider)
    assert kwargs["host"] == "mcp-cache.westeurope.redis.azure.net" and kwargs["port"] == 10000
    assert client.connection_pool.connection_class.__name__ == "SSLConnection"
    assert kwargs["credential_provider"]._idp._resource == limiter.ENTRA_RESOURCE


def test_the_user_assigned_identity_azure_client_id_names_is_the_one_signed_in():
    provider = limiter.entra_credential_provider({"AZURE_CLIENT_ID": "11111111-2222-3333-4444-555555555555"})
    assert provider._idp._app._managed_identity == {
        "ManagedIdentityIdType": "ClientId",
        "Id": "11111111-2222-3333-4444-555555555555",
    }
    system = limiter.entra_credential_provider({})._idp._app._managed_identity
    assert system["ManagedIdentityIdType"] == "SystemAssigned"


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379", "rediss://:access-key@cache.example:6380"])
def test_a_url_with_a_password_or_without_tls_uses_no_entra_provider(url: str):
    assert "credential_provider" not in limiter.redis_client(url, environ={}).connection_pool.connection_kwargs


def test_create_app_stops_on_a_bad_spec_and_start_up_on_an_unknown_tool():
    with pytest.raises(SettingsError, match="MCP_RATE_LIMITS is not JSON"):
        create_app(environ={"MCP_RATE_LIMITS": "{"})
    router = create_app(environ={"MCP_RATE_LIMITS": '{"whoamy": {"total": "1/second"}}'})
    with pytest.raises(SettingsError, match=r"MCP_RATE_LIMITS names tool\(s\) the server does not have: whoamy"):
        asyncio.run(router.dispatcher.start())


# --------------------------------------------------------------- telemetry

_TELEMETRY_PROBE = """
import asyncio, json
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from app.main import create_app
from app.protocol import Exchange

reader, spans = InMemoryMetricReader(), InMemorySpanExporter()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(spans))
trace.set_tracer_provider(provider)
router = create_app(environ={"MCP_RATE_LIMITS": '{"whoami": {"perCaller": "1/hour"}}', "MCP_REDIS_URL": REDIS_URL})
# Redis gone (nothing listens on port 1): limited locally, and the span says so.
unreachable = create_app(
    environ={"MCP_RATE_LIMITS": '{"whoami": {"total": "9/hour"}}', "MCP_REDIS_URL": "redis://127.0.0.1:1"}
)

async def main():
    await router.dispatcher.start()
    for n in range(3):
        message = {"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}}
        with trace.get_tracer("probe").start_as_current_span("message"):
            reply = await router.dispatcher.handle(Exchange(headers={}, message=message, peer="192.0.2.4"))
        print("status", reply.status, dict(reply.headers).get(b"retry-after") is not None)
    await unreachable.dispatcher.start()
    message = {"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}}
    with trace.get_tracer("probe").start_as_current_span("degraded"):
        reply = await unreachable.dispatcher.handle(Exchange(headers={}, message=message, peer="192.0.2.4"))
    print("degraded", reply.status)

asyncio.run(main())
points = [
    (dict(point.attributes), point.value)
    for rm in reader.get_metrics_data().resource_metrics for sm in rm.scope_metrics for m in sm.metrics
    if m.name == "mcp.server.rate_limit.refusals" for point in m.data.data_points
]
print("points", json.dumps(points))
print("spans", json.dumps([dict(s.attributes) for s in spans.get_finished_spans() if s.name == "message"]))
print("degraded spans", json.dumps([dict(s.attributes) for s in spans.get_finished_spans() if s.name == "degraded"]))
"""


def test_refusals_are_counted_per_tool_limit_and_caller_and_local_limiting_is_marked_on_the_span(flushed: RedisServer):
    probe = f"REDIS_URL = {flushed.url!r}\n" + _TELEMETRY_PROBE
    env = {**os.environ, "MCP_REGION": "westeurope"}
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    statuses = [line for line in lines if line.startswith("status")]
    assert statuses == ["status 200 False", "status 429 True", "status 429 True"]
    expected = {"gen_ai.tool.name": "whoami", "mcp.rate_limit.scope": "perCaller", "mcp.rate_limit.caller": "anonymous"}
    assert json.loads(lines[-3].removeprefix("points ")) == [[{**expected, "cloud.region": "westeurope"}, 2]]
    marked = [s for s in json.loads(lines[-2].removeprefix("spans ")) if s.get("mcp.rate_limit.refused")]
    assert marked == [{"mcp.rate_limit.refused": "perCaller", **expected}] * 2
    assert "degraded 200" in lines
    assert json.loads(lines[-1].removeprefix("degraded spans ")) == [{"mcp.rate_limit.mode": "local"}]

