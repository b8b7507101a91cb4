"""The official conformance requirement sets against the fixture server, on the SDK's transport and on ours.

The fixture (`tests.conformance.everything_server`) is an ordinary `MCPServer`; the SDK's own stateless
transport is the reference, and ours must match it: every scored scenario of 2026-07-28 and of 2025-11-25
passes, on one process and through a per-request round-robin front end over two processes that share their
keys (a multi-round `requestState` minted by one instance is opened by the other). The only misses allowed
are the handshake era's back-channel scenarios, which need a server-to-client request or a subscription on a
session that a stateless server does not keep; each must fail with the clear error named below, never
with a hang, a crash or some unrelated breakage.
"""

from __future__ import annotations

import pytest

from tests.app.round_robin import round_robin
from tests.app.serving import running_server
from tests.conformance.suite import conformance_cli, format_table, run_suite, verdict_problems

FIXTURE = "tests.conformance.everything_server:server"
BACK_CHANNEL = (
    "tools-call-sampling",
    "tools-call-elicitation",
    "elicitation-sep1034-defaults",
    "elicitation-sep1330-enums",
)
SUBSCRIPTIONS = ("resources-subscribe", "resources-unsubscribe")

SDK_MISSES = {
    "2026-07-28": {},
    "2025-11-25": {
        **dict.fromkeys(BACK_CHANNEL, "no back-channel for server-initiated requests"),
        **dict.fromkeys(SUBSCRIPTIONS, "Method not found"),
    },
}
"""What the SDK's stateless transport answers: -32600 for a server-to-client request, -32601 for subscribe."""

OUR_MISSES = {
    "2026-07-28": {},
    "2025-11-25": dict.fromkeys(BACK_CHANNEL + SUBSCRIPTIONS, "stateless"),
}
"""Ours must say why (issue 10): the server is stateless, and 2026-07-28 clients get the feature via input_required."""

SHARED_KEYS = {
    "MCP_HANDLE_KEYS": "conformance:conformance-handle-secret-0123456789",
    "MCP_REQUEST_STATE_KEYS": "conformance:conformance-request-state-secret-0123456789",
}


@pytest.fixture(scope="module")
def cli() -> list[str]:
    return conformance_cli()


@pytest.fixture(scope="module")
def sdk_server():
    with running_server(server=["-m", "uvicorn", "tests.conformance.sdk_app:app"]) as srv:
        yield srv


@pytest.fixture(scope="module")
def our_server():
    with running_server(env=SHARED_KEYS, args=["--server", FIXTURE]) as srv:
        yield srv


@pytest.fixture(scope="module")
def our_fleet():
    with (
        running_server(env=SHARED_KEYS, args=["--server", FIXTURE]) as a,
        running_server(env=SHARED_KEYS, args=["--server", FIXTURE]) as b,
        round_robin([a.url, b.url]) as front,
    ):
        yield front


def _assert_conformant(cli, url, requirements, misses, output) -> None:
    results = run_suite(url, requirements, output, cli)
    problems = verdict_problems(results, misses[requirements])
    assert not problems, "\n".join(problems) + "\n\n" + format_table(results)
    print(format_table(results))


@pytest.mark.parametrize("requirements", ["2026-07-28", "2025-11-25"])
def test_fixture_conforms_on_the_sdk_transport(cli, sdk_server, requirements, tmp_path):
    _assert_conformant(cli, sdk_server.mcp_url, requirements, SDK_MISSES, tmp_path)


@pytest.mark.parametrize("requirements", ["2026-07-28", "2025-11-25"])
def test_fixture_conforms_on_our_transport(cli, our_server, requirements, tmp_path):
    _assert_conformant(cli, our_server.mcp_url, requirements, OUR_MISSES, tmp_path)


@pytest.mark.parametrize("requirements", ["2026-07-28", "2025-11-25"])
def test_fixture_conforms_across_two_instances(cli, our_fleet, requirements, tmp_path):
    _assert_conformant(cli, our_fleet.mcp_url, requirements, OUR_MISSES, tmp_path)
