"""app/requirements.txt (what App Service's Oryx build installs) cannot drift from pyproject.toml + uv.lock.

It is the `app` + `telemetry` dependency groups exported from uv.lock with
exact pins and the lock's sha256 hashes, so production runs the versions the
tests ran, from exactly the files the lock names: with hashes, pip (Oryx)
installs in hash-checking mode and refuses any other file. Regenerate it with
the command in its header after changing either group.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "app" / "requirements.txt"
DEPLOYED_GROUPS = ("app", "telemetry")


def _uv() -> str:
    # `uv run` exports the path of its own binary as UV; fall back to PATH.
    uv = os.environ.get("UV") or shutil.which("uv")
    assert uv, "uv is required (it runs this test suite)"
    return uv


def _requirement_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _hashed_pins() -> dict[str, tuple[Requirement, list[str]]]:
    """Each requirement (continuation lines joined) with the hashes of its ``--hash`` options."""
    logical, pending = [], ""
    for line in _requirement_lines(REQUIREMENTS.read_text()):
        pending += " " + line.removesuffix("\\")
        if not line.endswith("\\"):
            logical.append(pending.strip())
            pending = ""
    pins = {}
    for line in logical:
        requirement, *hashes = re.split(r"\s+--hash=", line)
        parsed = Requirement(requirement)
        pins[canonicalize_name(parsed.name)] = (parsed, hashes)
    return pins


def _pins() -> dict[str, Requirement]:
    return {name: requirement for name, (requirement, _) in _hashed_pins().items()}


def test_requirements_are_exactly_the_locked_export_of_the_deployed_groups():
    groups = [arg for group in DEPLOYED_GROUPS for arg in ("--group", group)]
    exported = subprocess.run(
        [_uv(), "export", "--frozen", "--no-default-groups", *groups, "--no-annotate"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert _requirement_lines(REQUIREMENTS.read_text()) == _requirement_lines(exported), (
        "app/requirements.txt is stale; regenerate it with the command in its header"
    )


def test_every_direct_dependency_of_the_deployed_groups_is_pinned_within_its_range():
    groups = tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]
    pins = _pins()
    for group in DEPLOYED_GROUPS:
        for spec in groups[group]:
            wanted = Requirement(spec)
            pinned = pins.get(canonicalize_name(wanted.name))
            assert pinned is not None, f"{wanted.name} (group {group}) is missing from app/requirements.txt"
            (version,) = [s.version for s in pinned.specifier if s.operator == "=="]
            assert wanted.specifier.contains(version, prereleases=True), f"{pinned} is outside {spec}"


def test_extras_of_the_deployed_groups_are_resolved_into_pins():
    # uv export flattens `uvicorn[standard]` into the extra's own packages.
    pins = _pins()
    assert {"httptools", "uvloop", "websockets"} <= pins.keys()


def test_every_pin_is_exact_and_no_deploy_or_test_tooling_ships():
    groups = tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]
    pins = _pins()
    for requirement in pins.values():
        assert [s.operator for s in requirement.specifier] == ["=="], f"{requirement} is not an exact pin"
    # Some dev packages (jsonschema, httpx...) are also the server's transitive
    # dependencies; the tooling itself must never be installed on App Service.
    # azure-identity is the one infra package the server needs too (redis-entraid and the Azure Monitor distro
    # authenticate with it); the canary gate names it for the deploying user's CLI credential.
    needed_by_the_server = {"azure-identity"}
    infra = [Requirement(spec).name for spec in groups["infra"]]
    tooling = [name for name in infra if name not in needed_by_the_server] + ["pytest", "hypothesis", "locust"]
    for name in map(canonicalize_name, tooling):
        assert name not in pins, f"{name} is deploy or test tooling and must not be installed on App Service"


def test_every_pin_carries_the_sha256_hashes_of_its_locked_files():
    # One hash makes pip check every requirement; none may be left without.
    for name, (_, hashes) in _hashed_pins().items():
        assert hashes, f"{name} has no --hash"
        assert all(h.startswith("sha256:") and len(h) == len("sha256:") + 64 for h in hashes), name
