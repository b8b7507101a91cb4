"""Run the official MCP conformance suite's requirement set against a server URL and read back its verdicts.

``conformance server --url URL --requirements R`` runs exactly the scenarios revision ``R`` requires (plus
some it reports but never scores) and writes one folder per scenario, ``<out>/server-<scenario>-<timestamp>/``,
holding ``checks.json``: a list of ``{id, name, status, errorMessage?, ...}``. The suite fails a scenario when
any check is ``FAILURE`` (``WARNING``, ``INFO`` and ``SKIPPED`` do not fail it) and scores only the scenarios
its frozen requirement list names; this module applies the same two rules, so a test can say "every scored
scenario passes except these, and each of those fails with this message"::

    results = run_suite(url, "2025-11-25", tmp_path)
    assert not verdict_problems(results, {"resources-subscribe": "stateless"})

Standalone, it prints a table: ``python -m tests.conformance.suite --url URL --requirements 2026-07-28``.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.npm_tools import node22, npm_install, package_dir

CONFORMANCE = "@modelcontextprotocol/conformance@0.2.0-alpha.12"
FAILURE = "FAILURE"
WARNING = "WARNING"
SUITE_TIMEOUT_S = 900
"""A whole requirement set takes seconds on a healthy server; the bound is for one that hangs every scenario."""

_RESULT_DIR = re.compile(r"^server-(?P<scenario>.+)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z$")


@dataclass(frozen=True)
class Check:
    id: str
    status: str
    message: str


@dataclass(frozen=True)
class Scenario:
    name: str
    scored: bool
    checks: tuple[Check, ...]

    @property
    def failures(self) -> list[Check]:
        return [check for check in self.checks if check.status == FAILURE]

    @property
    def passed(self) -> bool:
        return not self.failures


def conformance_cli() -> list[str]:
    """The suite's command line: Node 22 and the pinned package's entry point (both installed on first use)."""
    prefix = npm_install(CONFORMANCE)
    return [str(node22()), str(package_dir(prefix, "@modelcontextprotocol/conformance") / "dist" / "index.js")]


def scored_scenarios(requirements: str, cli: Sequence[str]) -> list[str]:
    """The server scenarios revision ``requirements`` scores, as the suite's own ``list`` names them.

    Read from the suite rather than copied here, so a pinned-version bump cannot leave a stale list behind.
    """
    listing = subprocess.run(
        [*cli, "list", "--requirements", requirements], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    section = listing.split("Server scenarios", 1)[1].split("\n\n", 1)[0]
    return re.findall(r"^\s+- (\S+)$", section, flags=re.MULTILINE)


def read_results(output_dir: Path, scored: Sequence[str]) -> dict[str, Scenario]:
    """Every scenario the suite wrote under ``output_dir``; a scored one it wrote nothing for counts as failed."""
    results: dict[str, Scenario] = {}
    for checks_file in sorted(output_dir.glob("*/checks.json")):
        if not (match := _RESULT_DIR.match(checks_file.parent.name)):
            continue
        name = match["scenario"]
        checks = tuple(
            Check(raw["id"], raw["status"], raw.get("errorMessage") or "")
            for raw in json.loads(checks_file.read_text())
        )
        results[name] = Scenario(name, name in scored, checks)
    for name in scored:
        if name not in results:
            results[name] = Scenario(name, True, (Check("checks.json", FAILURE, "the suite wrote no checks.json"),))
    return results


def run_suite(url: str, requirements: str, output_dir: Path, cli: Sequence[str] | None = None) -> dict[str, Scenario]:
    """Run requirement set ``requirements`` against ``url``, writing under ``output_dir``; return its verdicts."""
    cli = list(cli or conformance_cli())
    output_dir.mkdir(parents=True, exist_ok=True)
    completed = subprocess.run(
        [*cli, "server", "--url", url, "--requirements", requirements, "-o", str(output_dir)],
        check=False,
        capture_output=True,
        text=True,
        timeout=SUITE_TIMEOUT_S,
    )
    if not any(output_dir.glob("*/checks.json")):
        raise RuntimeError(
            f"the suite ran nothing (exit {completed.returncode}):\n{completed.stdout}\n{completed.stderr}"
        )
    return read_results(output_dir, scored_scenarios(requirements, cli))


def verdict_problems(results: Mapping[str, Scenario], expected_failures: Mapping[str, str]) -> list[str]:
    """What is wrong with ``results``, given scenarios allowed to fail, each with a text its failure must show.

    Empty when every scored scenario passes except those in ``expected_failures``, and each of those fails
    with a check whose message contains its text (case-insensitive): an expected failure must be the clear
    error the server owes, not some other breakage, and one that now passes is a stale entry to remove.
    """
    problems = []
    for name, expected in expected_failures.items():
        scenario = results.get(name)
        if scenario is None or not scenario.scored:
            problems.append(f"{name}: expected to fail, but the suite did not score it")
        elif scenario.passed:
            problems.append(f"{name}: expected to fail with {expected!r} but passed (remove it from the list)")
        elif not any(expected.lower() in check.message.lower() for check in scenario.failures):
            problems.append(f"{name}: failed without {expected!r}: " + _describe(scenario.failures))
    for scenario in results.values():
        if scenario.scored and not scenario.passed and scenario.name not in expected_failures:
            problems.append(f"{scenario.name}: " + _describe(scenario.failures))
    return problems


def _describe(checks: Sequence[Check]) -> str:
    return "; ".join(f"{check.id}: {check.message}" for check in checks)


def format_table(results: Mapping[str, Scenario]) -> str:
    """One row per scenario, scored first: pass/FAIL, the check counts, then each failing or warning check."""
    rows = []
    ordered = sorted(results.values(), key=lambda scenario: not scenario.scored)
    width = max(len(scenario.name) for scenario in ordered)
    for scenario in ordered:
        verdict = "pass" if scenario.passed else "FAIL"
        tag = "" if scenario.scored else " (not scored)"
        counted = sum(check.status == "SUCCESS" for check in scenario.checks)
        rows.append(f"{scenario.name:<{width}}  {verdict}  {counted}/{len(scenario.checks)} checks{tag}")
        rows.extend(
            f"{'':<{width}}    - {check.id}: {'' if check.status == FAILURE else '(warning) '}{check.message}"
            for check in scenario.checks
            if check.status in (FAILURE, WARNING)
        )
    scored = [scenario for scenario in ordered if scenario.scored]
    rows.append(f"\nscored: {sum(s.passed for s in scored)} of {len(scored)} scenarios pass")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the server's MCP endpoint, e.g. http://127.0.0.1:8765/mcp")
    parser.add_argument("--requirements", required=True, help="spec revision, e.g. 2026-07-28 or 2025-11-25")
    parser.add_argument("--output", type=Path, help="where the suite writes its results (default: a temp folder)")
    args = parser.parse_args(argv)
    output = args.output or Path(tempfile.mkdtemp(prefix=f"conformance-{args.requirements}-"))
    results = run_suite(args.url, args.requirements, output)
    print(format_table(results))
    print(f"results: {output}")
    return int(any(scenario.scored and not scenario.passed for scenario in results.values()))


if __name__ == "__main__":
    sys.exit(main())
