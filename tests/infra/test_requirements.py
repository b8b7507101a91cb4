"""The package's requirements.txt: the host's pins kept as they are, a team's dependencies merged after them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from components.package import PROJECT_ROOT
from components.requirements import (
    RequirementsError,
    dependency_file,
    host_pins,
    merged_requirements,
    read_requirements,
)

HOST = PROJECT_ROOT / "app" / "requirements.txt"


def _file(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def _merge(tmp_path: Path, team: str) -> str:
    team_file = _file(tmp_path, "requirements.txt", team)
    return merged_requirements(HOST, read_requirements(team_file), team_file).decode()


def test_the_host_pins_come_first_byte_for_byte_then_the_team_requirements_in_order(tmp_path):
    merged = _merge(tmp_path, "roman==4.2\nMCP >= 2.3, <3\n")
    host = HOST.read_text()
    assert merged.startswith(host)
    assert merged[len(host) :] == "# the server's own dependencies, from requirements.txt\nroman==4.2\nMCP<3,>=2.3\n"


def test_a_team_without_dependencies_gets_the_host_file_unchanged(tmp_path):
    assert _merge(tmp_path, "# nothing yet\n\n").encode() == HOST.read_bytes()


def test_a_range_that_holds_the_host_pin_is_accepted(tmp_path):
    assert "pydantic>=2" in _merge(tmp_path, "pydantic>=2\n")


@pytest.mark.parametrize(
    ("team", "pin"),
    [
        ("mcp<2", "mcp==2.3.0"),
        ("pydantic==1.10.13", "pydantic==2.14.3"),
        ("Pydantic_Core>=99", "pydantic-core==2.50.4"),  # names compare canonicalised
        ("uvicorn @ https://example.invalid/uvicorn.whl", "uvicorn==0.54.0"),  # no version to check
    ],
)
def test_a_requirement_no_host_pin_satisfies_is_an_error_naming_both(tmp_path, team, pin):
    with pytest.raises(RequirementsError) as raised:
        _merge(tmp_path, f"roman==4.2\n{team}\n")
    message = str(raised.value)
    assert f"conflicts with the host's pin {pin!r}" in message
    assert str(tmp_path / "requirements.txt") in message
    assert "roman" not in message


def test_every_conflict_is_reported_at_once(tmp_path):
    with pytest.raises(RequirementsError) as raised:
        _merge(tmp_path, "mcp<2\nfastapi<0.100\n")
    assert "'mcp<2' conflicts" in str(raised.value) and "'fastapi<0.100' conflicts" in str(raised.value)


def test_comments_blank_lines_and_continuations_are_read_as_pip_reads_them(tmp_path):
    path = _file(tmp_path, "requirements.txt", "# top\n\nroman==4.2  # pinned\nattrs>=20,\\\n  <30\n")
    assert [str(r) for r in read_requirements(path)] == ["roman==4.2", "attrs<30,>=20"]


@pytest.mark.parametrize("line", ["-r other.txt", "--index-url https://example.invalid/simple", "-e ."])
def test_pip_options_are_refused_naming_the_line(tmp_path, line):
    path = _file(tmp_path, "requirements.txt", f"roman==4.2\n{line}\n")
    with pytest.raises(RequirementsError, match=re.escape(f"line 2: {line!r} is a pip option")):
        read_requirements(path)


def test_a_line_that_is_not_a_requirement_is_an_error_naming_the_line(tmp_path):
    path = _file(tmp_path, "requirements.txt", "roman==4.2\n\nroman = 4.2\n")
    with pytest.raises(RequirementsError, match=r"line 3: 'roman = 4.2' is not a requirement"):
        read_requirements(path)


def test_pyproject_project_dependencies_are_read(tmp_path):
    path = _file(tmp_path, "pyproject.toml", '[project]\nname = "acme"\ndependencies = ["roman==4.2", "mcp>=2"]\n')
    assert read_requirements(path) == [Requirement("roman==4.2"), Requirement("mcp>=2")]


def test_a_pyproject_without_dependencies_has_none(tmp_path):
    assert read_requirements(_file(tmp_path, "pyproject.toml", '[project]\nname = "acme"\n')) == []


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('[project]\nname = "acme"\ndynamic = ["dependencies"]\n', "declares \\[project\\].dependencies dynamic"),
        ("[project\n", "is not valid TOML"),
        ('[project]\ndependencies = "roman"\n', "must be a list of requirement strings"),
        ('[project]\ndependencies = ["roman=4.2"]\n', "'roman=4.2' is not a requirement"),
    ],
)
def test_a_pyproject_whose_dependencies_cannot_be_read_is_an_error(tmp_path, text, error):
    with pytest.raises(RequirementsError, match=error):
        read_requirements(_file(tmp_path, "pyproject.toml", text))


def test_requirements_txt_is_preferred_over_pyproject(tmp_path):
    assert dependency_file(tmp_path) is None
    _file(tmp_path, "pyproject.toml", "[project]\n")
    assert dependency_file(tmp_path) == tmp_path / "pyproject.toml"
    _file(tmp_path, "requirements.txt", "")
    assert dependency_file(tmp_path) == tmp_path / "requirements.txt"


def test_the_host_file_holds_exact_pins_only(tmp_path):
    assert host_pins(HOST)["mcp"].version == "2.3.0"
    with pytest.raises(RequirementsError, match="'mcp>=2' is not an exact pin"):
        host_pins(_file(tmp_path, "requirements.txt", "roman==4.2\nmcp>=2\n"))
