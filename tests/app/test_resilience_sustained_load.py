"""Sustained load across three server processes, balanced per request with no affinity.

A load driver (asyncio + httpx) runs 64 concurrent clients for 60 s (env
RESILIENCE_SOAK_SECONDS overrides) against three `python -m app` processes on
127.0.0.1 that share one handle key ring. Every request goes to the next
process in turn, as App Service's front end does with client affinity off, so
each step of a tally chain lands on a different process than the one that
minted its handle. Every answer is checked: zero errors, every tally total
right, every echo, fact and prime count correct. Per-process share, request
count and latency percentiles are printed; nothing is asserted on time
(timings on a shared CI machine are not a test; bench/ measures performance).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import statistics
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field

import httpx
import pytest

from tests.app.resilience.tools import ToolSchemas, check_primes, tally_outcome
from tests.app.resilience.wire import headers_for, rpc, structured
from tests.app.serving import running_server

SOAK_SECONDS = float(os.environ.get("RESILIENCE_SOAK_SECONDS", "60"))
CLIENTS = 64
PROCESSES = 3
REQUEST_TIMEOUT_S = 30.0
KEYS = "soak-2:soak-secret-two-0123456789,soak-1:soak-secret-one-0123456789"


@dataclass
class Tally:
    """What the driver saw: every request, its latency, who served it, and every failure."""

    latencies: list[float] = field(default_factory=list)
    served_by: Counter = field(default_factory=Counter)
    operations: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    chains: int = 0
    chain_steps: int = 0
    retried: Counter = field(default_factory=Counter)  # failures a load balancer retries elsewhere, by kind


class Driver:
    """Clients sharing one rotation over the backends: each request goes to the next one (no affinity).

    With `retry_connection_failures`, a request whose connection fails before any response (refused, or
    closed unanswered: a backend shutting down) is sent to the next backend, as a load balancer does. Tools
    here may be retried safely: a tally step re-sent with the same handle gives the same total.
    """

    def __init__(
        self,
        urls: list[str],
        schemas: ToolSchemas,
        facts: dict[str, str],
        seed: int,
        retry_connection_failures: bool = False,
    ) -> None:
        self.urls = urls  # may be edited while running (a backend replaced)
        self.turn = itertools.count()
        self.retry = retry_connection_failures
        self.schemas = schemas
        self.facts = facts
        self.tally = Tally()
        self.seed = seed
        self.ids = itertools.count()

    async def call(self, client: httpx.AsyncClient, body: dict, what: str) -> dict | None:
        body = {**body, "id": next(self.ids)}
        start = time.perf_counter()
        # A retry goes to the next backend after the one that failed, as a load balancer's does: taking the shared
        # turn instead, concurrent calls could keep landing one call on the stopped backend.
        first = next(self.turn)
        for attempt in range(1, 3 * len(self.urls) + 1):
            url = self.urls[(first + attempt - 1) % len(self.urls)]
            try:
                response = await client.post(url, json=body, headers=headers_for(body))
                break
            except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError) as exc:
                if not self.retry or attempt == 3 * len(self.urls):
                    self.tally.errors.append(f"{what} via {url}: {type(exc).__name__}: {exc}")
                    return None
                self.tally.retried[type(exc).__name__] += 1
            except httpx.HTTPError as exc:
                self.tally.errors.append(f"{what} via {url}: {type(exc).__name__}: {exc}")
                return None
        self.tally.latencies.append(time.perf_counter() - start)
        self.tally.served_by[response.headers.get("x-served-by", f"<no X-Served-By from {url}>")] += 1
        self.tally.operations[what] += 1
        if response.status_code != 200:
            self.tally.errors.append(f"{what} via {url}: HTTP {response.status_code}: {response.text[:200]}")
            return None
        answer = response.json()
        if answer.get("id") != body["id"] or "result" not in answer or answer["result"].get("isError"):
            self.tally.errors.append(f"{what} via {url}: {str(answer)[:300]}")
            return None
        return answer["result"]

    def check(self, ok: bool, message: str) -> None:
        if not ok:
            self.tally.errors.append(message)

    async def tally_chain(self, client: httpx.AsyncClient, rng: random.Random) -> None:
        handle, expected = None, 0
        for _ in range(rng.randint(2, 8)):
            add = rng.randint(-50, 100)
            result = await self.call(client, self.schemas.tally(add, handle), "tally")
            if result is None:
                return
            expected += add
            try:
                total, handle = tally_outcome(result)
            except AssertionError as exc:
                self.tally.errors.append(f"tally: {exc}")
                return
            self.check(total == expected, f"tally chain total {total}, expected {expected}")
            self.tally.chain_steps += 1
        self.tally.chains += 1

    async def one_operation(self, client: httpx.AsyncClient, rng: random.Random) -> None:
        kind = rng.choices(["tally", "echo", "fact", "primes", "whoami", "list"], weights=[4, 2, 2, 1, 2, 1])[0]
        if kind == "tally":
            await self.tally_chain(client, rng)
        elif kind == "echo":
            text = "".join(rng.choice('abcdé✓ \n"{}') for _ in range(rng.randint(0, 300)))
            result = await self.call(client, self.schemas.echo(text), "echo")
            if result is not None:
                self.check(structured(result).get("message") == text, f"echo changed its text: {text!r} -> {result}")
        elif kind == "fact":
            key = rng.choice(sorted(self.facts))
            result = await self.call(client, self.schemas.lookup_fact(key), "lookup_fact")
            if result is not None:
                value = structured(result)
                self.check(isinstance(value, dict) and value.get("fact") == self.facts[key], f"fact {key}: {result}")
        elif kind == "primes":
            limit = rng.randint(2, 20_000)
            result = await self.call(client, self.schemas.compute_primes(limit), "compute_primes")
            if result is not None:
                try:
                    check_primes(result, limit)
                except AssertionError as exc:
                    self.tally.errors.append(str(exc))
        elif kind == "whoami":
            await self.call(client, self.schemas.whoami(), "whoami")
        else:
            await self.call(client, rpc("tools/list"), "tools/list")

    async def client_loop(self, number: int, deadline: float) -> None:
        rng = random.Random(self.seed * 1000 + number)
        limits = httpx.Limits(max_connections=2, max_keepalive_connections=2)
        async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S, limits=limits) as client:
            while time.monotonic() < deadline:
                await self.one_operation(client, rng)

    async def run(self, seconds: float, clients: int = CLIENTS, during=None) -> Tally:
        """Drive `clients` loops for `seconds`; `during` (a coroutine function) runs alongside them."""
        deadline = time.monotonic() + seconds
        side = [during()] if during is not None else []
        await asyncio.wait_for(
            asyncio.gather(*(self.client_loop(n, deadline) for n in range(clients)), *side),
            timeout=seconds + REQUEST_TIMEOUT_S * 8 + 30,
        )
        return self.tally


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 10) - 1] if len(values) > 1 else 0.0


def _facts(client: httpx.Client, url: str) -> dict[str, str]:
    listed = client.post(url, json=rpc("resources/list"), headers=headers_for(rpc("resources/list"))).json()
    facts = {}
    for resource in listed["result"]["resources"]:
        body = rpc("resources/read", {"uri": resource["uri"]})
        text = client.post(url, json=body, headers=headers_for(body)).json()["result"]["contents"][0]["text"]
        facts[resource["uri"].split("://", 1)[1]] = text
    return facts


def test_three_processes_sixty_seconds_sixty_four_clients_lose_nothing(capsys: pytest.CaptureFixture) -> None:
    with ExitStack() as stack:
        servers = [
            stack.enter_context(running_server(env={"MCP_HANDLE_KEYS": KEYS, "WEBSITE_INSTANCE_ID": f"soak-{n}"}))
            for n in range(PROCESSES)
        ]
        urls = [s.mcp_url for s in servers]
        with httpx.Client(timeout=10) as client:
            schemas = ToolSchemas(
                client.post(urls[0], json=rpc("tools/list"), headers=headers_for(rpc("tools/list"))).json()["result"]
            )
            facts = _facts(client, urls[0])

        started = time.monotonic()
        tally = asyncio.run(Driver(urls, schemas, facts, seed=20260728).run(SOAK_SECONDS))
        elapsed = time.monotonic() - started

        for server in servers:
            assert server.process.poll() is None, f"a server died under load:\n{server.output()[-3000:]}"

    total = len(tally.latencies)
    lines = [
        (
            f"sustained load: {PROCESSES} processes, {CLIENTS} clients, {elapsed:.1f} s, {total} requests "
            f"({total / elapsed:.0f} req/s), {tally.chains} tally chains ({tally.chain_steps} steps), "
            f"{len(tally.errors)} errors"
        ),
        "per-process share: "
        + ", ".join(f"{who}: {n} ({100 * n / total:.1f}%)" for who, n in sorted(tally.served_by.items())),
        (
            f"latency p50 {1000 * percentile(tally.latencies, 50):.1f} ms, "
            f"p99 {1000 * percentile(tally.latencies, 99):.1f} ms, max {1000 * max(tally.latencies):.1f} ms"
        ),
        "operations: " + ", ".join(f"{k} {v}" for k, v in sorted(tally.operations.items())),
    ]
    with capsys.disabled():
        print("\n" + "\n".join(lines))

    assert not tally.errors, f"{len(tally.errors)} errors, first ones:\n" + "\n".join(tally.errors[:20])
    assert total > 0 and tally.chains > 0
    assert len(tally.served_by) == PROCESSES, f"every process should have served: {tally.served_by}"
    for who, n in tally.served_by.items():
        # Round-robin per request: each process gets a third, up to the rounding of in-flight requests.
        assert abs(n - total / PROCESSES) <= CLIENTS + 1, f"{who} served {n} of {total}"


def test_a_rolling_restart_under_load_loses_nothing(capsys: pytest.CaptureFixture) -> None:
    """SIGTERM one of three processes under load and bring up its replacement, as a platform restart does.

    Requests on the stopping process finish; connections it refuses or closes unanswered go to the next
    backend (the load balancer's retry); tally chains carry on through the replacement with their handles.
    """
    seconds = min(SOAK_SECONDS, 10)  # the restart takes ~2 s; the rest is traffic on every backend, the new one too
    with ExitStack() as stack:

        def start(n: int):
            env = {"MCP_HANDLE_KEYS": KEYS, "WEBSITE_INSTANCE_ID": f"rolling-{n}", "MCP_GRACEFUL_TIMEOUT": "10"}
            return stack.enter_context(running_server(env=env))

        servers = [start(n) for n in range(PROCESSES)]
        urls = [s.mcp_url for s in servers]
        with httpx.Client(timeout=10) as client:
            body = rpc("tools/list")
            schemas = ToolSchemas(client.post(urls[0], json=body, headers=headers_for(body)).json()["result"])
            facts = _facts(client, urls[0])
        driver = Driver(urls, schemas, facts, seed=7, retry_connection_failures=True)
        restart: dict[str, float] = {}

        async def restart_first_backend() -> None:
            await asyncio.sleep(seconds / 4)
            servers[0].process.send_signal(signal.SIGTERM)
            restart["sigterm"] = time.monotonic()
            replacement = await asyncio.to_thread(start, PROCESSES)  # a new instance, as the platform starts one
            driver.urls[0] = replacement.mcp_url
            restart["replaced"] = time.monotonic()
            exit_code = await asyncio.to_thread(servers[0].process.wait, 30)
            restart["exit_code"] = exit_code

        tally = asyncio.run(driver.run(seconds, clients=CLIENTS // 2, during=restart_first_backend))

    total = len(tally.latencies)
    with capsys.disabled():
        print(
            f"\nrolling restart: {total} requests in {seconds:.0f} s, {tally.chains} tally chains, "
            f"{len(tally.errors)} errors; replacement up {restart['replaced'] - restart['sigterm']:.1f} s after "
            f"SIGTERM; retried on another backend: {dict(tally.retried) or 'none'}; served by: "
            + ", ".join(f"{who} {n}" for who, n in sorted(tally.served_by.items()))
        )
    assert not tally.errors, f"{len(tally.errors)} errors, first ones:\n" + "\n".join(tally.errors[:20])
    assert restart.get("exit_code") in (0, -signal.SIGTERM), restart
    assert tally.served_by.get(f"rolling-{PROCESSES}", 0) > 0, f"the replacement served nothing: {tally.served_by}"
    assert tally.served_by.get("rolling-0", 0) > 0 and tally.chains > 0
