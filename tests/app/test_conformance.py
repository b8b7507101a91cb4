"""The official MCP conformance suite (npm @modelcontextprotocol/conformance) against the bundled demo server.

The host's completeness is measured by the requirement sets against the
suite's fixture server (tests/conformance); this file holds the demo, as
deployed by default, to the scenarios its tools can take part in.

The suite runs on Node 22, installed by tests/npm_tools.py on first use (CI
included), against ``python -m app`` started with `running_server`. Each
scenario writes ``checks.json``; every check must be SUCCESS except the few
listed in ``NOT_APPLICABLE``, each of which needs a diagnostic fixture tool
(or feature) this production server deliberately does not ship.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from tests.app.serving import running_server
from tests.npm_tools import node22, npm_install, package_dir

CONFORMANCE = "@modelcontextprotocol/conformance@0.2.0-alpha.12"
SCENARIOS = [
    "server-stateless",
    "tools-list",
    "caching",
    "http-header-validation",
    "sep-2164-resource-not-found",
    "dns-rebinding-protection",
]

LEGACY_SCENARIOS = ["server-initialize", "ping", "tools-list", "resources-list", "dns-rebinding-protection"]
"""The same server as a handshake-era (2025-11-25) peer: initialize answered statelessly, no session."""

NOT_APPLICABLE: dict[str, dict[str, str]] = {
    "server-stateless": {
        "sep-2575-server-rejects-undeclared-capability": (
            "needs the suite's fixture tool 'test_missing_capability' (tests/conformance runs it against the fixture server)"
        ),
        "sep-2575-missing-capability-http-400": "same fixture tool 'test_missing_capability' (the -32021 status)",
        "sep-2575-http-server-no-independent-requests-on-stream": (
            "needs the fixture tool 'test_streaming_elicitation'; no demo tool elicits mid-call (tests/conformance runs it)"
        ),
        "sep-2575-server-no-log-without-loglevel": (
            "needs the fixture tool 'test_logging_tool'; no demo tool logs to the client (tests/conformance runs it)"
        ),
    },
}

SKIPPED_BY_THE_SUITE: dict[str, set[str]] = {
    # The suite itself skips these: they exercise subscriptions/listen and list-changed notifications, which a
    # server with a static catalogue (listChanged: false, no subscriptions) does not offer.
    "server-stateless": {
        "sep-2575-server-sends-subscription-ack",
        "sep-2575-server-tags-subscription-id",
        "sep-2575-server-honors-notification-filter",
        "sep-2575-server-sends-prompts-list-changed-on-subscription",
        "sep-2575-server-sends-tools-list-changed-on-subscription",
    },
}


@pytest.fixture(scope="module")
def conformance_cli() -> list[str]:
    prefix = npm_install(CONFORMANCE)
    return [str(node22()), str(package_dir(prefix, "@modelcontextprotocol/conformance") / "dist" / "index.js")]


@pytest.fixture(scope="module")
def conformance_server():
    with running_server(env={"MCP_HANDLE_KEYS": "conformance:conformance-secret-0123"}) as srv:
        yield srv


def run_scenario(cli: list[str], url: str, scenario: str, output: Path, version: str = "2026-07-28") -> list[dict]:
    completed = subprocess.run(
        [*cli, "server", "--url", url, "--scenario", scenario, "--spec-version", version, "-o", str(output)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    results = list(output.glob("*/checks.json"))
    assert len(results) == 1, f"no checks.json (exit {completed.returncode}):\n{completed.stdout}\n{completed.stderr}"
    return json.loads(results[0].read_text())


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_conformance_scenario_passes(conformance_cli, conformance_server, scenario, tmp_path):
    # dns-rebinding-protection insists on a localhost URL with a localhost Host/Origin; 127.0.0.1 is one.
    checks = run_scenario(conformance_cli, conformance_server.mcp_url, scenario, tmp_path)
    excluded = NOT_APPLICABLE.get(scenario, {})
    skipped = SKIPPED_BY_THE_SUITE.get(scenario, set())
    statuses = Counter(check["status"] for check in checks)
    failures = [
        f"{check['id']}: {check['status']} {check.get('errorMessage', '')}"
        for check in checks
        if check["id"] not in excluded
        and not (check["id"] in skipped and check["status"] == "SKIPPED")
        and check["status"] != "SUCCESS"
    ]
    assert not failures, "\n".join(failures)
    # the exclusions are exact: each names a check the suite really ran and that failed only for its fixture
    ran = {check["id"] for check in checks}
    assert set(excluded) <= ran, f"stale exclusions: {set(excluded) - ran}"
    passed = statuses["SUCCESS"]
    assert passed >= len(checks) - len(excluded) - len(skipped)
    print(f"{scenario}: {passed}/{len(checks)} passed, {len(excluded)} not applicable, {statuses['SKIPPED']} skipped")


@pytest.mark.parametrize("scenario", LEGACY_SCENARIOS)
def test_legacy_conformance_scenario_passes(conformance_cli, conformance_server, scenario, tmp_path):
    checks = run_scenario(conformance_cli, conformance_server.mcp_url, scenario, tmp_path, version="2025-11-25")
    assert checks, "the scenario ran no checks"
    # INFO is the suite noting a check does not apply (e.g. session-id format, when no session id is issued)
    failures = [
        f"{c['id']}: {c['status']} {c.get('errorMessage', '')}"
        for c in checks
        if c["status"] not in ("SUCCESS", "INFO")
    ]
    assert not failures, "\n".join(failures)
    passed = sum(c["status"] == "SUCCESS" for c in checks)
    assert passed, "no check passed"
    print(f"{scenario} (2025-11-25): {passed}/{len(checks)} passed, {len(checks) - passed} informational")
