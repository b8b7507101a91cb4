"""The package's ``requirements.txt``: the host's hashed pins plus a team server's own dependencies.

App Service's build (Oryx) installs from one ``requirements.txt`` at the root
of the zip, so the host's pins (``app/requirements.txt``, exported from the
lock with the sha256 of every file the lock names) and the team's
dependencies have to become one file. With hashes pip installs in
hash-checking mode: it installs exactly the files the hashes name, and it
demands a hash, and an ``==`` pin, for *every* requirement once one has a
hash (pip's "Secure installs" docs). So the merged file is one of two kinds:

- the team lists its requirements with ``--hash`` too (a lock export:
  ``uv export --format requirements-txt``, ``pip-compile --generate-hashes``),
  each an ``==`` pin: the host's file as it is, then the team's pins with
  their hashes, the host's pins skipped, since the host's hashes already
  install them. Everything stays hash-checked. The team's file must hold its
  transitive dependencies too; one left out fails the build on the staging
  slot (nothing is swapped);
- the team lists them without hashes (or in ``pyproject.toml``, which cannot
  hold hashes): the host's pins without their hashes, then the team's
  requirements, and a comment saying hash checking is off for this package.
  The host's versions are still exact.

A file with some hashed and some unhashed requirements is an error naming the
unhashed ones (pip would refuse it).

A team requirement on a distribution the host pins must accept the pinned
version (its specifier set contains it), else the two cannot be installed
together and that is an error naming both. Markers are not evaluated: a pin
and a requirement conflict whatever platforms their markers select, so a
clash is reported here, not first on the machine where both apply. Only
direct requirements are compared: a team dependency whose own requirements
clash with a host pin shows up when the build installs the package on the
staging slot.

A team lists its dependencies in ``requirements.txt`` (preferred when both
exist: it is the file App Service itself reads) or in ``pyproject.toml``'s
``[project].dependencies`` (PEP 621). Requirements files hold requirements
(with ``--hash`` options) only: other pip options (``-r``, ``-e``,
``--index-url``, ...) are refused, because a merged file cannot honour them
for the host's pins too.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# packaging is locked through pulumi, which requires it; it is not listed in the infra group because the
# host ships it too, and tests/app/test_requirements.py keeps every infra-group package off App Service.
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

REQUIREMENTS_TXT = "requirements.txt"
PYPROJECT_TOML = "pyproject.toml"
# In the order looked for in a team's folder.
DEPENDENCY_FILES = (REQUIREMENTS_TXT, PYPROJECT_TOML)
# pip's own rule: a comment starts at '#' at the start of a line or after whitespace.
_COMMENT = re.compile(r"(^|\s+)#.*$")


# A requirement line's ``--hash=<algorithm>:<digest>`` options (pip also takes ``--hash <value>``).
_HASH_OPTION = re.compile(r"\s+--hash(?:=|\s+)(\S+)")


class RequirementsError(ValueError):
    """A requirements file that cannot be read, or a team requirement that contradicts a host pin."""


@dataclass(frozen=True)
class Listed:
    """One requirement as a file lists it, with the hashes of its ``--hash`` options (none from pyproject.toml)."""

    requirement: Requirement
    hashes: tuple[str, ...] = ()

    def __str__(self) -> str:
        return str(self.requirement)

    def line(self) -> str:
        """The requirement as a requirements-file line, each hash on a continuation line as the lock export writes."""
        return str(self.requirement) + "".join(f" \\\n    --hash={h}" for h in self.hashes)


@dataclass(frozen=True)
class Pin:
    """One host requirement: ``name==version`` (with its marker, if any), as the lock export writes it."""

    requirement: Requirement
    version: str
    hashes: tuple[str, ...] = ()


def dependency_file(folder: Path) -> Path | None:
    """The file in ``folder`` that lists a team's dependencies, or None when it has neither."""
    return next((folder / name for name in DEPENDENCY_FILES if (folder / name).is_file()), None)


def read_requirements(path: Path) -> list[Listed]:
    """The requirements a ``requirements.txt`` or ``pyproject.toml`` lists."""
    if path.name == PYPROJECT_TOML:
        return [Listed(r) for r in _pyproject_dependencies(path)]
    return _requirements_txt(path)


def _requirements_txt(path: Path) -> list[Listed]:
    requirements = []
    for number, line in _logical_lines(path.read_text(encoding="utf-8")):
        hashes = tuple(_HASH_OPTION.findall(line))
        text = _HASH_OPTION.sub("", line).strip()
        if text.startswith("-") or re.search(r"\s-", text):
            raise RequirementsError(
                f"{path} line {number}: {line!r} is a pip option; list requirements only "
                "(name[extras] specifier ; marker, optionally --hash=...), so they can be merged with the host's pins"
            )
        requirements.append(Listed(_parse(text, f"{path} line {number}"), hashes))
    return requirements


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Non-empty lines without comments, continuation lines joined, each with the number of its first line."""
    lines: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = _COMMENT.sub("", raw)
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1]
            continue
        line, pending = (pending + line).strip(), ""
        if line:
            lines.append((start, line))
    return lines


def _pyproject_dependencies(path: Path) -> list[Requirement]:
    try:
        project = tomllib.loads(path.read_text(encoding="utf-8")).get("project", {})
    except tomllib.TOMLDecodeError as error:
        raise RequirementsError(f"{path} is not valid TOML: {error}") from None
    if "dependencies" in project.get("dynamic", ()):
        raise RequirementsError(
            f"{path} declares [project].dependencies dynamic; list them in [project].dependencies "
            f"or in a {REQUIREMENTS_TXT} beside it"
        )
    dependencies = project.get("dependencies", [])
    if not isinstance(dependencies, list) or not all(isinstance(d, str) for d in dependencies):
        raise RequirementsError(f"{path}: [project].dependencies must be a list of requirement strings")
    return [_parse(d, f"{path} [project].dependencies") for d in dependencies]


def _parse(text: str, where: str) -> Requirement:
    try:
        return Requirement(text)
    except InvalidRequirement as error:
        raise RequirementsError(f"{where}: {text!r} is not a requirement: {error}") from None


def host_pins(path: Path) -> dict[str, Pin]:
    """The host's requirements by canonical name; each must be an exact pin (the lock export's form)."""
    pins = {}
    for listed in _requirements_txt(path):
        version = _pinned_version(listed.requirement)
        if version is None:
            raise RequirementsError(f"{path}: {str(listed)!r} is not an exact pin (name==version)")
        pins[canonicalize_name(listed.requirement.name)] = Pin(listed.requirement, version, listed.hashes)
    return pins


def _pinned_version(requirement: Requirement) -> str | None:
    specifiers = list(requirement.specifier)
    if len(specifiers) != 1 or specifiers[0].operator != "==" or requirement.url:
        return None
    return specifiers[0].version


def merged_requirements(host_file: Path, team: Sequence[Listed], team_file: Path) -> bytes:
    """The package's requirements.txt: ``host_file``'s pins, then ``team`` (read from ``team_file``).

    Hash-checked when the team's requirements are hashed pins, else without
    hashes (see the module docstring). Raises :class:`RequirementsError`
    naming every team requirement that no host-pinned version satisfies, or
    that breaks hash-checking mode.
    """
    pins = host_pins(host_file)
    conflicts = []
    for listed in team:
        requirement = listed.requirement
        pin = pins.get(canonicalize_name(requirement.name))
        if pin is None:
            continue
        if requirement.url or not requirement.specifier.contains(pin.version, prereleases=True):
            conflicts.append(f"{str(requirement)!r} conflicts with the host's pin {str(pin.requirement)!r}")
    if conflicts:
        raise RequirementsError(
            f"{team_file}: "
            + "; ".join(conflicts)
            + " (the host's pins are fixed: widen the team's specifier to accept the pinned version)"
        )
    host = host_file.read_bytes()
    if not team:
        return host
    hashed = [listed for listed in team if listed.hashes]
    if hashed:
        unhashed = [str(listed) for listed in team if not listed.hashes]
        unpinned = [str(listed) for listed in hashed if _pinned_version(listed.requirement) is None]
        if unhashed or unpinned:
            raise RequirementsError(
                f"{team_file}: "
                + "; ".join(
                    [f"{', '.join(map(repr, unhashed))} have no --hash"] * bool(unhashed)
                    + [f"{', '.join(map(repr, unpinned))} are not == pins"] * bool(unpinned)
                )
                + ": once one requirement has a hash, pip checks every one and needs each pinned with == "
                "(export the team's lock with hashes, e.g. `uv export --format requirements-txt`, or list no hashes)"
            )
        own = [listed for listed in hashed if canonicalize_name(listed.requirement.name) not in pins]
        lines = [f"# the server's own dependencies, from {team_file.name} (hash-checked)", *(t.line() for t in own)]
        return host + ("" if host.endswith(b"\n") else "\n").encode() + ("\n".join(lines) + "\n").encode()
    lines = [
        f"# hash checking off: {team_file.name} lists the server's dependencies without --hash, and pip checks",
        "# hashes for all requirements or none; the host's pins below are exact, without their hashes",
        *(str(pin.requirement) for pin in pins.values()),
        f"# the server's own dependencies, from {team_file.name}",
        *(str(listed) for listed in team),
    ]
    return ("\n".join(lines) + "\n").encode()
