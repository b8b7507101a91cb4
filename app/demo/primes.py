"""CPU-bound prime sieving off the event loop, in a small bounded process pool.

``compute_primes`` is deliberately CPU work. Run on the event loop it would
stall every other request on the worker; run in a thread it would still hold
the GIL and slow them. So it runs in a process pool owned by the worker:

- ``max_workers`` = ``MCP_PRIMES_CONCURRENCY`` (default 2) processes, started
  lazily on first use with the ``spawn`` method (forking a process that runs
  an event loop and threads is unsafe);
- at most that many jobs run at once; further calls wait on an asyncio
  semaphore (a cheap suspended coroutine, not a thread), so a burst queues
  instead of piling work onto the pool;
- the input is bounded (``MCP_PRIMES_LIMIT``, default 10,000,000, one byte
  of sieve per number), so one job cannot run away.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import ProcessPoolExecutor


def count_primes(limit: int) -> int:
    """How many primes are <= ``limit`` (a sieve of Eratosthenes)."""
    if limit < 2:
        return 0
    sieve = bytearray([1]) * (limit + 1)
    sieve[0] = sieve[1] = 0
    for n in range(2, int(limit**0.5) + 1):
        if sieve[n]:
            sieve[n * n :: n] = bytes(len(range(n * n, limit + 1, n)))
    return sieve.count(1)


class PrimeWorkers:
    """A lazily started, bounded process pool for `count_primes`."""

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self._pool: ProcessPoolExecutor | None = None
        self._slots: asyncio.Semaphore | None = None

    async def count(self, limit: int) -> int:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.concurrency)
        async with self._slots:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=self.concurrency, mp_context=multiprocessing.get_context("spawn")
                )
            return await asyncio.get_running_loop().run_in_executor(self._pool, count_primes, limit)

    def shutdown(self) -> None:
        if self._pool is not None:
            # wait=True: the process exits right after this (uvicorn re-raises SIGTERM), and workers only told
            # to stop stay blocked on their call queue for ever, orphaned. Waiting costs at most the sieve in
            # progress, which MCP_PRIMES_LIMIT bounds.
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
