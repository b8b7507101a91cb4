"""The rate limiter: local token buckets that lease their tokens from counters in Redis, shared by the fleet.

Why leases: a Redis round trip per call would cost more CPU than the whole call costs without one. So each
process keeps, per limit and caller, a bucket of tokens it has leased from a fixed-window counter in Redis
(one atomic Lua script: grant ``min(lease, limit - used)`` and count it); a call takes a token locally and
goes to Redis only when its bucket is empty. The trade-off is accuracy: a token one process leased but did not
use is unavailable to the others until the window ends, so the fleet never admits more than the limit and may
admit less, by up to ``lease - 1`` per process. The lease is sized to the limit to bound that at
``LEASE_SLACK`` of it (``limit * LEASE_SLACK / processes``, at least 1): small limits lease one token at a
time, which is cheap because a small limit is a low rate, and exact; large ones lease in batches. A bucket
that Redis reports exhausted stays refused locally until its window ends, so a caller hammering past its limit
costs no Redis traffic either. A call to a tool without a limit costs one dict lookup.

Windows are fixed and aligned to the epoch (every process agrees on them without talking), so a caller can
spend one window's limit at its end and the next one's at the start: at most twice the limit over any period.
``Retry-After`` is the whole seconds until the refused window ends.

Redis unreachable (``MCP_REDIS_URL`` down or unset while limits are configured): the process keeps serving and
enforces its share of each limit locally (the limit over the processes, ``MCP_RATE_LIMIT_INSTANCES`` times the
workers per instance, at least 1), logs that once, marks the spans of limited calls ``mcp.rate_limit.mode=local``,
and tries Redis again every ``RETRY_REDIS_S``; the first lease that succeeds restores the shared counters (what was admitted locally in that
window is not counted there). With ``MCP_RATE_LIMITS_FAIL_CLOSED=true`` it refuses limited calls with 503
instead. Either way every request is answered: a lease waits at most ``REDIS_TIMEOUT_S``.

Redis on Azure: a ``rediss://`` URL without a password authenticates as the app's managed identity with
``redis-entraid``'s credential provider (its documented ``create_from_managed_identity``; the user-assigned
identity named by ``AZURE_CLIENT_ID`` when that is set, else the system-assigned one).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from app.contract import (
    ATTR_RATE_LIMIT_CALLER,
    ATTR_RATE_LIMIT_SCOPE,
    ATTR_REGION,
    ATTR_TOOL,
    METRIC_RATE_LIMIT_REFUSALS,
    RATE_LIMIT_INSTANCES_ENV,
    RATE_LIMITS_FAIL_CLOSED_ENV,
    REDIS_URL_ENV,
)
from app.identity import Caller
from app.ratelimit.callers import caller_key, client_address
from app.ratelimit.spec import EVERY_TOOL, PER_CALLER, RATE_LIMITS_ENV, TOTAL, Rate, ToolLimits, parse_rate_limits
from app.telemetry import region

logger = logging.getLogger(__name__)

LEASE_SLACK = 0.05
"""The share of a limit the fleet may leave unused through leases held by processes that do not spend them."""
REDIS_TIMEOUT_S = 0.25
RETRY_REDIS_S = 1.0
ENTRA_RESOURCE = "https://redis.azure.com/"
"""The audience of Entra tokens for Azure Cache for Redis and Azure Managed Redis."""
KEY_PREFIX = "mcp:rl"

# KEYS[1] the window's counter; ARGV: lease wanted, limit, counter lifetime (ms). Returns the tokens granted.
LEASE_SCRIPT = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local grant = math.min(tonumber(ARGV[1]), tonumber(ARGV[2]) - used)
if grant <= 0 then return 0 end
redis.call('INCRBY', KEYS[1], grant)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return grant
"""


class RateLimitConfigError(ValueError):
    """A rate-limit setting the server cannot run with (other than the spec itself)."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a call may not run now: which limit, and when a call would pass."""

    tool: str
    """The tool whose limit is reached, or ``*`` (every tool)."""
    scope: str
    """``perCaller`` or ``total``; ``unavailable`` when the shared counters cannot be reached (fail closed)."""
    rate: Rate | None
    retry_after: int
    """Whole seconds, at least 1."""

    @property
    def status(self) -> int:
        return 503 if self.scope == "unavailable" else 429

    @property
    def message(self) -> str:
        if self.rate is None:
            return (
                f"Rate limits unavailable: the shared rate-limit counters cannot be reached and this server refuses "
                f"limited calls until they can; retry after {self.retry_after} s"
            )
        which = "every tool" if self.tool == EVERY_TOOL else f"tool {self.tool}"
        whose = "per caller" if self.scope == PER_CALLER else "in total for all callers"
        return f"Rate limit exceeded: {which} allows {self.rate} {whose}; retry after {self.retry_after} s"

    @property
    def data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"tool": self.tool, "scope": self.scope, "retryAfter": self.retry_after}
        if self.rate is not None:
            data["limit"] = str(self.rate)
        return data


@dataclass(slots=True)
class _Bucket:
    tokens: int = 0
    exhausted: bool = False
    local_used: int = 0
    """Calls admitted in this window while Redis was unreachable."""


@dataclass(slots=True)
class _Rule:
    """One configured limit: a tool (or ``*``), a scope and a rate, with its buckets for the current window."""

    tool: str
    scope: str
    rate: Rate
    lease: int
    share: int
    window: int = -1
    buckets: dict[str, _Bucket] = field(default_factory=dict)

    def bucket(self, caller: str, now: float) -> tuple[_Bucket, int]:
        window = int(now // self.rate.period_s)
        if window != self.window:  # a new window: every bucket of the old one is spent, forget them all
            self.window = window
            self.buckets.clear()
        key = caller if self.scope == PER_CALLER else ""
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = _Bucket()
        return bucket, window

    def retry_after(self, window: int, now: float) -> int:
        return max(1, math.ceil((window + 1) * self.rate.period_s - now))

    def refusal(self, window: int, now: float) -> Refusal:
        return Refusal(self.tool, self.scope, self.rate, self.retry_after(window, now))


class Gate:
    """The limits one tool's calls must pass, the tool's own before ``*``'s."""

    def __init__(self, limiter: RateLimiter, rules: list[_Rule]) -> None:
        self._limiter = limiter
        self._rules = rules

    async def admit(self, caller: str) -> Refusal | None:
        """Take a token from every limit for ``caller``; None when the call may run, else why not."""
        now = time.time()
        taken: list[_Bucket] = []
        for rule in self._rules:
            bucket, window = rule.bucket(caller, now)
            if bucket.tokens > 0:
                bucket.tokens -= 1
                taken.append(bucket)
                continue
            if bucket.exhausted:
                refusal = rule.refusal(window, now)
            else:
                refusal = await self._limiter.refill(rule, caller, window, bucket, now)
            if refusal is not None:
                for earlier in taken:  # leased to this process: back into its bucket, not to Redis
                    earlier.tokens += 1
                return refusal
            taken.append(bucket)
        return None


class RateLimiter:
    """Every configured limit; `gate` gives the ones a tool's calls must pass (None: the tool is unlimited)."""

    def __init__(
        self,
        limits: Mapping[str, ToolLimits],
        redis: Any = None,
        instances: int = 1,
        processes_per_instance: int = 1,
        fail_closed: bool = False,
        behind_front_end: bool = False,
    ) -> None:
        self.limits = dict(limits)
        self._behind_front_end = behind_front_end
        self._redis = redis
        self._script = redis.register_script(LEASE_SCRIPT) if redis is not None else None
        self._processes = instances * processes_per_instance
        self._fail_closed = fail_closed
        self._redis_retry_at = 0.0
        self.local_mode = redis is None
        """True while limits are enforced per process (Redis unreachable or not configured)."""
        self._rules: dict[str, list[_Rule]] = {
            tool: [
                self._rule(tool, scope, rate)
                for scope, rate in ((PER_CALLER, entry.per_caller), (TOTAL, entry.total))
                if rate is not None
            ]
            for tool, entry in self.limits.items()
        }
        if redis is None:
            logger.warning(
                "%s is set but %s is not: each process enforces its share of the limits (1/%d) on its own",
                RATE_LIMITS_ENV,
                REDIS_URL_ENV,
                self._processes,
            )

    def _rule(self, tool: str, scope: str, rate: Rate) -> _Rule:
        lease = max(1, int(rate.count * LEASE_SLACK / self._processes))
        return _Rule(tool, scope, rate, lease=lease, share=max(1, rate.count // self._processes))

    def caller_key(self, caller: Caller | None, headers: Any, peer: str | None) -> str:
        """Whom a call counts against (`app.ratelimit.callers`)."""
        if caller is not None:
            return caller_key(caller, "")
        return caller_key(None, client_address(headers, peer, self._behind_front_end))

    def gate(self, tool: str) -> Gate | None:
        rules = [*self._rules.get(tool, ()), *self._rules.get(EVERY_TOOL, ())]
        return Gate(self, rules) if rules else None

    async def refill(self, rule: _Rule, caller: str, window: int, bucket: _Bucket, now: float) -> Refusal | None:
        """An empty bucket: lease from Redis (or count locally while it is unreachable) and take one token."""
        if self._redis is not None and (not self.local_mode or now >= self._redis_retry_at):
            key = f"{KEY_PREFIX}:{rule.tool}:{rule.scope}:{caller if rule.scope == PER_CALLER else ''}:{window}"
            try:
                granted = int(
                    await self._script(keys=[key], args=[rule.lease, rule.rate.count, rule.rate.period_s * 2000])
                )
            except Exception as error:  # noqa: BLE001 - any failure to reach Redis degrades, never fails a call
                self._lost(error, now)
            else:
                if self.local_mode:
                    self.local_mode = False
                    logger.warning("Redis is reachable again: rate limits are shared by the fleet again")
                if granted <= 0:
                    bucket.exhausted = True
                    return rule.refusal(window, now)
                bucket.tokens += granted - 1
                return None
        if self._fail_closed:
            return Refusal(rule.tool, "unavailable", None, max(1, math.ceil(self._redis_retry_at - now)))
        _mark_local()
        if bucket.local_used >= rule.share:
            return rule.refusal(window, now)
        bucket.local_used += 1
        return None

    def _lost(self, error: Exception, now: float) -> None:
        self._redis_retry_at = now + RETRY_REDIS_S
        if not self.local_mode:
            self.local_mode = True
            logger.warning(
                "Redis is unreachable (%s: %s): %s; retrying every %g s",
                type(error).__name__,
                error,
                "refusing limited calls (503)"
                if self._fail_closed
                else f"each process enforces its share of the limits (1/{self._processes}) on its own",
                RETRY_REDIS_S,
            )

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()


def _mark_local() -> None:
    """Say on the current span (when telemetry is on) that this call was limited without the shared counters."""
    try:
        from opentelemetry import trace
    except ImportError:  # pragma: no cover - the telemetry group is deployed with the app
        return
    trace.get_current_span().set_attribute("mcp.rate_limit.mode", "local")


def record_refusal(refusal: Refusal, caller_id: str | None) -> None:
    """Count a refusal per tool, limit, caller and region (``mcp.server.rate_limit.refusals``; a no-op without
    telemetry)."""
    try:
        from opentelemetry import metrics, trace
    except ImportError:  # pragma: no cover
        return
    attributes = {
        ATTR_TOOL: refusal.tool,
        ATTR_RATE_LIMIT_SCOPE: refusal.scope,
        ATTR_RATE_LIMIT_CALLER: caller_id or "anonymous",
    }
    _refusals(metrics).add(1, {**attributes, ATTR_REGION: region()})  # a span has its region already
    trace.get_current_span().set_attributes({"mcp.rate_limit.refused": refusal.scope, **attributes})


_counter: Any = None


def _refusals(metrics: Any) -> Any:
    global _counter
    if _counter is None:
        _counter = metrics.get_meter("app.ratelimit").create_counter(
            METRIC_RATE_LIMIT_REFUSALS, unit="{call}", description="tools/call refused by a rate limit"
        )
    return _counter


def redis_client(url: str, environ: Mapping[str, str] = os.environ) -> Any:
    """An asyncio Redis client for ``url``; ``rediss://`` without a password signs in with the managed identity."""
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise RateLimitConfigError(
            f"{REDIS_URL_ENV}={url!r} is not a Redis URL; expected redis://host:port (local) or rediss://host:port "
            "(Azure, signed in with the app's managed identity)"
        )
    # No retries inside the client (its default backs off for seconds): a failed lease degrades to local limits
    # at once and Redis is tried again after RETRY_REDIS_S, so no call waits longer than REDIS_TIMEOUT_S.
    timeouts = {
        "socket_timeout": REDIS_TIMEOUT_S,
        "socket_connect_timeout": REDIS_TIMEOUT_S,
        "retry": Retry(NoBackoff(), 0),
    }
    if parts.scheme == "rediss" and parts.password is None:
        return Redis(
            host=parts.hostname,
            port=parts.port or 10000,
            ssl=True,
            credential_provider=entra_credential_provider(environ),
            **timeouts,
        )
    return Redis.from_url(url, **timeouts)


def entra_credential_provider(environ: Mapping[str, str] = os.environ) -> Any:
    """redis-entraid's provider for the app's managed identity (user-assigned when AZURE_CLIENT_ID names one)."""
    from redis_entraid.cred_provider import ManagedIdentityIdType, ManagedIdentityType, create_from_managed_identity

    client_id = environ.get("AZURE_CLIENT_ID", "").strip()
    if client_id:
        return create_from_managed_identity(
            identity_type=ManagedIdentityType.USER_ASSIGNED,
            resource=ENTRA_RESOURCE,
            id_type=ManagedIdentityIdType.CLIENT_ID,
            id_value=client_id,
        )
    return create_from_managed_identity(identity_type=ManagedIdentityType.SYSTEM_ASSIGNED, resource=ENTRA_RESOURCE)


def from_env(environ: Mapping[str, str] = os.environ) -> RateLimiter | None:
    """The limiter ``MCP_RATE_LIMITS`` configures, or None when it is unset (nothing is limited).

    The processes sharing a limit are ``MCP_RATE_LIMIT_INSTANCES`` times the workers per instance
    (``WEB_CONCURRENCY``, as `app.__main__` reads it); they size the leases."""
    raw = environ.get(RATE_LIMITS_ENV, "").strip()
    if not raw:
        return None
    limits = parse_rate_limits(raw)
    instances_raw = environ.get(RATE_LIMIT_INSTANCES_ENV, "").strip() or "1"
    if not instances_raw.isdigit() or not 1 <= int(instances_raw) <= 1000:
        raise RateLimitConfigError(
            f"{RATE_LIMIT_INSTANCES_ENV}={instances_raw!r} is not allowed; expected an integer 1..1000"
        )
    fail_closed_raw = environ.get(RATE_LIMITS_FAIL_CLOSED_ENV, "").strip().lower() or "false"
    if fail_closed_raw not in ("true", "false"):
        raise RateLimitConfigError(
            f"{RATE_LIMITS_FAIL_CLOSED_ENV}={fail_closed_raw!r} is not allowed; expected true or false"
        )
    url = environ.get(REDIS_URL_ENV, "").strip()
    if fail_closed_raw == "true" and not url:
        raise RateLimitConfigError(
            f"{RATE_LIMITS_FAIL_CLOSED_ENV}=true needs {REDIS_URL_ENV}: without it every limited call fails"
        )
    return RateLimiter(
        limits,
        redis=redis_client(url, environ) if url else None,
        instances=int(instances_raw),
        processes_per_instance=int(workers) if (workers := environ.get("WEB_CONCURRENCY", "")).isdigit() else 1,
        fail_closed=fail_closed_raw == "true",
        behind_front_end=bool(environ.get("WEBSITE_SITE_NAME", "").strip()),
    )
