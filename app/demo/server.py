"""The bundled demo server: tools, a prompt and resources on the official SDK's `MCPServer`.

The tool surface is the seed sample's (the App Service stateless MCP sample),
so its k6 script and clients work unchanged: ``whoami()``, ``echo(message)``,
``lookup_fact(topic)`` and ``compute_primes(limit)``, each answering with the
seed's JSON as its text content (and the same fields as structured content).
``tally``, ``pick_fact``, the ``explain_fact`` prompt and the ``fact://``
resources are this project's own.

Written exactly as a team writes its own server: SDK decorators, the SDK's
`Context` where a tool needs the request, and nothing from the host but its
public helpers (`app.handles` for explicit handles). The host serves it as the
default of ``python -m app`` (``--server app.demo.server:server``).

The SDK derives each tool's input and output schema from its type hints and
validates arguments. Every tool is ``async``: the SDK runs sync tools in a
worker thread, a hop that costs more than the work.

Environment (read once, at import; a bad value stops start-up naming it):

| variable | meaning | default |
|---|---|---|
| ``MCP_HANDLE_KEYS`` / ``MCP_HANDLE_TTL_SECONDS`` | ``tally``'s handle key ring and handle lifetime (`app.handles`) | a key generated at start-up, shared by the workers of one `python -m app`, + warning / 3600 |
| ``MCP_PRIMES_LIMIT`` | largest ``limit`` ``compute_primes`` accepts | 10000000 |
| ``MCP_PRIMES_CONCURRENCY`` | ``compute_primes`` jobs run at once per worker (others queue) | 2 |
| ``WEBSITE_INSTANCE_ID`` / ``WEBSITE_SITE_NAME`` / ``MCP_SLOT_NAME`` | ``instance_id`` / ``site_name`` / ``slot_name`` in results | ``local`` |
"""

# No `from __future__ import annotations`: the SDK evaluates tool annotations, and
# compute_primes' bound is a closure value that string annotations could not see.

import json
import os
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, NotRequired, TypedDict

from mcp.server.caching import CACHEABLE_METHODS, CacheHint
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError
from mcp.shared.exceptions import MCPError
from mcp.types import (
    MISSING_REQUIRED_CLIENT_CAPABILITY,
    CallToolResult,
    ElicitRequest,
    ElicitRequestFormParams,
    ElicitResult,
    InputRequiredResult,
    TextContent,
    ToolAnnotations,
)
from mcp.types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import Field

from app import current_caller
from app.demo.facts import FACTS, fact_uri
from app.demo.primes import PrimeWorkers
from app.handles import HandleCodec, HandleError, KeyRing
from app.settings import env_number

SERVER_NAME = "mcpscale"
SERVER_VERSION = "0.1.0"
INSTRUCTIONS = (
    "A stateless demo MCP server. `whoami` names the instance that served the call; `tally` keeps a running "
    "total in an explicit handle you pass back on the next call (any instance accepts it)."
)
TALLY_STEP_LIMIT = 1_000_000
PICK_FACT_INPUT = "fact"
ECHO_MAX_CHARS = 100_000
PRIMES_DEFAULT_LIMIT = 5000  # the seed's default

CATALOGUE_CACHE_HINT = CacheHint(ttl_ms=300_000, scope="public")
_READ_ONLY = ToolAnnotations(readOnlyHint=True, idempotentHint=True, openWorldHint=False)


class CallerInfo(TypedDict):
    id: str
    name: str | None


class Identity(TypedDict):
    instance_id: str
    hostname: str
    site_name: str
    slot_name: str
    pid: int
    caller: CallerInfo | None


class Echo(TypedDict):
    message: str
    instance_id: str


class FactLookup(TypedDict):
    """The fact when the topic is known; otherwise found is false and available_topics lists the topics."""

    topic: str
    fact: NotRequired[str]
    found: bool
    available_topics: NotRequired[list[str]]


class Fact(TypedDict):
    key: str
    text: str
    uri: str


class PrimeCount(TypedDict):
    limit: int
    prime_count: int
    instance_id: str


class Tally(TypedDict):
    handle: str
    total: int
    count: int
    expires_at: int


@dataclass(frozen=True)
class DemoSettings:
    """What the demo reads from its environment (see the module docstring)."""

    key_ring: KeyRing
    handle_ttl_seconds: int
    primes_limit: int
    primes_concurrency: int
    instance_id: str
    site_name: str
    slot_name: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "DemoSettings":
        env = os.environ if environ is None else environ
        return cls(
            key_ring=KeyRing.from_env(env),
            handle_ttl_seconds=env_number(env, "MCP_HANDLE_TTL_SECONDS", 3600, 1, 30 * 24 * 3600),
            primes_limit=env_number(env, "MCP_PRIMES_LIMIT", 10_000_000, 2, 100_000_000),
            primes_concurrency=env_number(env, "MCP_PRIMES_CONCURRENCY", 2, 1, 64),
            instance_id=env.get("WEBSITE_INSTANCE_ID", "").strip() or "local",
            site_name=env.get("WEBSITE_SITE_NAME", "").strip() or "local",
            slot_name=env.get("MCP_SLOT_NAME", "").strip() or "local",
        )


def build_server(settings: DemoSettings) -> MCPServer:
    """The demo `MCPServer`: every tool, prompt and resource, and the prime pool's lifetime."""
    codec = HandleCodec(settings.key_ring, settings.handle_ttl_seconds)
    primes = PrimeWorkers(settings.primes_concurrency)

    @asynccontextmanager
    async def lifespan(_: MCPServer) -> AsyncIterator[None]:
        try:
            yield
        finally:
            primes.shutdown()

    # log_level WARNING: at INFO the SDK logs every request, which costs throughput and says nothing useful.
    # The catalogue and the facts change only with a deployment: five-minute public cache hints, and no
    # list-changed subscriptions to offer.
    server = MCPServer(
        SERVER_NAME,
        version=SERVER_VERSION,
        instructions=INSTRUCTIONS,
        log_level="WARNING",
        lifespan=lifespan,
        cache_hints={method: CATALOGUE_CACHE_HINT for method in CACHEABLE_METHODS},
        subscriptions=False,
    )
    identity = Identity(
        instance_id=settings.instance_id,
        hostname=socket.gethostname(),
        site_name=settings.site_name,
        slot_name=settings.slot_name,
        pid=os.getpid(),
        caller=None,
    )

    def identity_result(identity: Identity) -> CallToolResult:
        return CallToolResult(
            content=[TextContent(type="text", text=json.dumps(identity, indent=2))], structured_content=dict(identity)
        )

    # Without a caller the identity never changes while the process runs, so its whole result is built once; the
    # SDK still validates the structured content against whoami's output schema on every call. (The hot path of
    # the benchmark: this saves the per-call JSON rendering of the text block and the result model.)
    anonymous_result = identity_result(identity)

    @server.tool(annotations=_READ_ONLY)
    async def whoami() -> Identity:
        """Name the serving instance (App Service instance id, host name, site, deployment slot, process id) and the
        signed-in caller (id and name; null without one)."""
        caller = current_caller()
        if caller is None:
            return anonymous_result  # type: ignore[return-value]
        return identity_result({**identity, "caller": CallerInfo(id=caller.id, name=caller.name)})  # type: ignore[return-value]

    @server.tool(annotations=_READ_ONLY)
    async def echo(
        message: Annotated[str, Field(max_length=ECHO_MAX_CHARS, description="Message to echo")],
    ) -> Echo:
        """Echo a message back, tagged with the serving instance."""
        return Echo(message=message, instance_id=settings.instance_id)

    @server.tool(annotations=_READ_ONLY)
    async def lookup_fact(topic: Annotated[str, Field(description=f"One of: {', '.join(FACTS)}")]) -> FactLookup:
        """Look up a short fact by topic; an unknown topic answers found=false with the available topics."""
        # The seed's matching: surrounding space and case do not matter.
        topic = topic.strip().lower()
        fact = FACTS.get(topic)
        if fact is None:
            return FactLookup(topic=topic, found=False, available_topics=sorted(FACTS))
        return FactLookup(topic=topic, fact=fact, found=True)

    @server.tool(annotations=_READ_ONLY)
    async def compute_primes(
        limit: Annotated[
            int, Field(ge=2, le=settings.primes_limit, description="Count primes up to this number")
        ] = PRIMES_DEFAULT_LIMIT,
    ) -> PrimeCount:
        """Count the primes up to `limit` (CPU work, run off the event loop)."""
        return PrimeCount(limit=limit, prime_count=await primes.count(limit), instance_id=settings.instance_id)

    @server.tool(
        annotations=ToolAnnotations(readOnlyHint=True, idempotentHint=True, openWorldHint=False),
        description=(
            "Add to a running total kept in an explicit, signed, expiring handle (no server-side session). "
            "Pass the returned handle on the next call, to this or any other instance."
        ),
    )
    async def tally(
        add: Annotated[int, Field(ge=-TALLY_STEP_LIMIT, le=TALLY_STEP_LIMIT, description="Amount to add")] = 1,
        handle: Annotated[
            str | None, Field(description="Handle from a previous tally call; omit to start a new tally")
        ] = None,
    ) -> Tally:
        total, count = 0, 0
        if handle is not None:
            try:
                state = codec.open(handle, current_caller())
                total, count = int(state["total"]), int(state["count"])
            except HandleError as error:
                raise ToolError(f"handle rejected ({error.kind}): {error}") from None
            except (KeyError, TypeError, ValueError):
                raise ToolError("handle rejected (malformed): it is not a tally handle") from None
        total, count = total + add, count + 1
        new_handle, expires_at = codec.mint({"total": total, "count": count}, current_caller())
        return Tally(handle=new_handle, total=total, count=count, expires_at=expires_at)

    @server.tool(
        annotations=_READ_ONLY,
        description=(
            "Ask the user to pick a fact from a form, then return it. Needs a 2026-07-28 client that declares "
            "form elicitation: the first call returns input_required with the form, the retry carries the answer."
        ),
    )
    async def pick_fact(ctx: Context) -> Fact | InputRequiredResult:
        if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            raise ToolError(
                "pick_fact asks the user through a form, which needs a 2026-07-28 client; "
                "a legacy connection has no per-request way to answer it (use lookup_fact)"
            )
        elicitation = ctx.client_capabilities.elicitation if ctx.client_capabilities else None
        if elicitation is None or (elicitation.url is not None and elicitation.form is None):
            raise MCPError(
                code=MISSING_REQUIRED_CLIENT_CAPABILITY,
                message="pick_fact requires the client capability elicitation.form (it asks the user to choose)",
                data={"requiredCapabilities": {"elicitation": {"form": {}}}},
            )
        answer = (ctx.input_responses or {}).get(PICK_FACT_INPUT)
        if answer is None:
            return InputRequiredResult(
                result_type="input_required",
                input_requests={
                    PICK_FACT_INPUT: ElicitRequest(
                        method="elicitation/create",
                        params=ElicitRequestFormParams(
                            message="Which fact would you like?",
                            requested_schema={
                                "type": "object",
                                "properties": {"key": {"type": "string", "title": "Fact", "enum": list(FACTS)}},
                                "required": ["key"],
                            },
                        ),
                    )
                },
            )
        if not isinstance(answer, ElicitResult):
            raise ToolError(f"input response {PICK_FACT_INPUT!r} must answer the elicitation form")
        if answer.action != "accept":
            raise ToolError(f"no fact picked: the user chose to {answer.action}")
        key = (answer.content or {}).get("key")
        if not isinstance(key, str) or key not in FACTS:
            raise ToolError(f"the form answer must carry key, one of: {', '.join(FACTS)}; got {key!r}")
        return Fact(key=key, text=FACTS[key], uri=fact_uri(key))

    @server.prompt(description="Ask the model to explain one fact to a newcomer, in plain words")
    async def explain_fact(key: Annotated[str, Field(description=f"One of: {', '.join(FACTS)}")]) -> str:
        text = FACTS.get(key)
        if text is None:
            raise ValueError(f"unknown fact key {key!r}; known keys: {', '.join(FACTS)}")
        return f"Explain this fact to someone new to the topic, in two or three plain sentences:\n\n{text}"

    for key, text in FACTS.items():
        server.resource(fact_uri(key), name=f"fact-{key}", description=f"Fact '{key}'", mime_type="text/plain")(
            _constant(text)
        )

    @server.resource("fact://{key}", name="fact", description="A fact by key", mime_type="text/plain")
    async def fact(key: str) -> str:
        text = FACTS.get(key)
        if text is None:
            raise ResourceNotFoundError(f"Resource not found: no fact with key {key!r}; known keys: {', '.join(FACTS)}")
        return text

    return server


def _constant(text: str):
    async def read() -> str:
        return text

    return read


server = build_server(DemoSettings.from_env())
