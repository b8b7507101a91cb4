"""compute_primes: a correct sieve, run off the event loop so other requests keep flowing."""

from __future__ import annotations

import asyncio
import time

import mcp

from app.demo.primes import count_primes
from tests.app.serving import running_server


def _naive_primes(limit: int) -> list[int]:
    return [n for n in range(2, limit + 1) if all(n % d for d in range(2, int(n**0.5) + 1))]


def test_sieve_matches_trial_division():
    for limit in (0, 1, 2, 3, 10, 97, 1000, 7919):
        assert count_primes(limit) == len(_naive_primes(limit))


def test_known_prime_count():
    assert count_primes(1_000_000) == 78_498


def test_compute_primes_does_not_stall_other_requests_on_the_same_worker():
    """While big sieves run in the pool, whoami calls on the same single worker keep completing.

    Ordering, not timing: the concurrent whoami calls must all finish before the
    sieves do. On the event loop (or a GIL-holding thread) they would queue behind them.
    """

    async def scenario(url: str) -> None:
        async with mcp.Client(url, mode="2026-07-28") as client:
            await client.call_tool("compute_primes", {"limit": 10})  # start the pool outside the race
            finished: list[str] = []

            async def sieve() -> None:
                result = await client.call_tool("compute_primes", {"limit": 60_000_000})
                assert result.structured_content["prime_count"] == 3_562_115
                finished.append("sieve")

            async def whoamis() -> None:
                await asyncio.sleep(0.05)
                for _ in range(5):
                    assert not (await client.call_tool("whoami", {})).is_error
                finished.append("whoami")

            started = time.perf_counter()
            await asyncio.gather(sieve(), whoamis())
            assert finished == ["whoami", "sieve"], f"after {time.perf_counter() - started:.2f}s: {finished}"

    with running_server(env={"MCP_PRIMES_LIMIT": "60000000", "MCP_PRIMES_CONCURRENCY": "1"}) as srv:
        asyncio.run(scenario(srv.mcp_url))
