"""The package's ``requirements.txt``: the host's pinned requirements plus a team server's own dependencies.

App Service's build (Oryx) installs from one ``requirements.txt`` at the root
of the zip, so the host's pins (``app/requirements.txt``, exported from the
lock) and the team's dependencies have to become one file. The host's file is
kept byte for byte, first, so the host runs on exactly what it was tested
with; the team's requirements follow, normalised (``packaging``'s
``str(Requirement)``), in the team's order. A team requirement on a
distribution the host pins must accept the pinned version (its specifier set
contains it), else the two cannot be installed together and that is an error
naming both; an accepted one is still listed, since it may add extras.
Markers are not evaluated: a pin and a requirement conflict whatever
platforms their markers select, so a clash is reported here, not first on
the machine where both apply.

Only direct requirements are compared: a team dependency whose own
requirements clash with a host pin shows up when the build installs the
package on the staging slot (the deploy fails and nothing is swapped).

A team lists its dependencies in ``requirements.txt`` (preferred when both
exist: it is the file App Service itself reads) or in ``pyproject.toml``'s
``[project].dependencies`` (PEP 621). Requirements files hold requirements
only: pip options (``-r``, ``-e``, ``--index-url``, ``--hash``, ...) are
refused, because a merged file cannot honour them for the host's pins too
(one ``--hash`` makes pip demand hashes for every line).
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


class RequirementsError(ValueError):
    """A requirements file that cannot be read, or a team requirement that contradicts a host pin."""


@dataclass(frozen=True)
class Pin:
    """One host requirement: ``name==version`` (with its marker, if any), as the lock export writes it."""

    requirement: Requirement
    version: str


def dependency_file(folder: Path) -> Path | None:
    """The file in ``folder`` that lists a team's dependencies, or None when it has neither."""
    return next((folder / name for name in DEPENDENCY_FILES if (folder / name).is_file()), None)


def read_requirements(path: Path) -> list[Requirement]:
    """The requirements a ``requirements.txt`` or ``pyproject.toml`` lists."""
    if path.name == PYPROJECT_TOML:
        return _pyproject_dependencies(path)
    return _requirements_txt(path)


def _requirements_txt(path: Path) -> list[Requirement]:
    requirements = []
    for number, line in _logical_lines(path.read_text(encoding="utf-8")):
        if line.startswith("-"):
            raise RequirementsError(
                f"{path} line {number}: {line!r} is a pip option; list requirements only "
                "(name[extras] specifier ; marker), so they can be merged with the host's pins"
            )
        requirements.append(_parse(line, f"{path} line {number}"))
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
    for requirement in _requirements_txt(path):
        specifiers = list(requirement.specifier)
        if len(specifiers) != 1 or specifiers[0].operator != "==" or requirement.url:
            raise RequirementsError(f"{path}: {str(requirement)!r} is not an exact pin (name==version)")
        pins[canonicalize_name(requirement.name)] = Pin(requirement, specifiers[0].version)
    return pins


def merged_requirements(host_file: Path, team: Sequence[Requirement], team_file: Path) -> bytes:
    """The package's requirements.txt: ``host_file`` as it is, then ``team`` (read from ``team_file``).

    Raises :class:`RequirementsError` naming every team requirement that no
    host-pinned version satisfies.
    """
    pins = host_pins(host_file)
    conflicts = []
    for requirement in team:
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
    lines = [f"# the server's own dependencies, from {team_file.name}", *(str(r) for r in team)]
    return host + ("" if host.endswith(b"\n") else "\n").encode() + ("\n".join(lines) + "\n").encode()
