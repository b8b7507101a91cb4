"""The package's requirements.txt: the host's pins kept as they are, a team's dependencies merged after them."""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from components.package import PROJECT_ROOT
from components.requirements import (
    Listed,
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


def test_the_host_file_is_hashed_so_oryx_installs_exactly_the_locked_files():
    pins = host_pins(HOST)
    assert pins and all(pin.hashes for pin in pins.values())


def test_unhashed_team_requirements_follow_the_host_pins_without_their_hashes_in_order(tmp_path):
    merged = _merge(tmp_path, "roman==4.2\nMCP >= 2.3, <3\n")
    assert "--hash=" not in merged
    assert merged.startswith("# hash checking off: requirements.txt lists the server's dependencies without --hash")
    pinned = [str(pin.requirement) for pin in host_pins(HOST).values()]
    lines = [line for line in merged.splitlines() if not line.startswith("#")]
    assert lines == [*pinned, "roman==4.2", "MCP<3,>=2.3"]


def test_a_team_without_dependencies_gets_the_host_file_unchanged(tmp_path):
    assert _merge(tmp_path, "# nothing yet\n\n").encode() == HOST.read_bytes()


def test_hashed_team_pins_follow_the_host_file_byte_for_byte_with_their_hashes(tmp_path):
    roman = f"roman==4.2 \\\n    --hash=sha256:{'1' * 64} \\\n    --hash=sha256:{'2' * 64}\n"
    team = f"{roman}mcp==2.3.0 --hash=sha256:{'3' * 64}\n"
    merged = _merge(tmp_path, team)
    host = HOST.read_text()
    assert merged.startswith(host)
    # mcp is the host's pin: the host's own hashed line installs it.
    assert merged[len(host) :] == "# the server's own dependencies, from requirements.txt (hash-checked)\n" + roman


@pytest.mark.parametrize(
    ("team", "named"),
    [
        (f"roman==4.2 --hash=sha256:{'1' * 64}\nattrs==26.1.0\n", "'attrs==26.1.0' have no --hash"),
        (f"roman>=4 --hash=sha256:{'1' * 64}\n", "'roman>=4' are not == pins"),
    ],
)
def test_hashed_team_requirements_must_all_be_hashed_pins(tmp_path, team, named):
    with pytest.raises(RequirementsError, match="once one requirement has a hash, pip checks every one") as raised:
        _merge(tmp_path, team)
    assert named in str(raised.value)


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
    assert read_requirements(path) == [Listed(Requirement("roman==4.2")), Listed(Requirement("mcp>=2"))]


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


# ---------------------------------------------------------------------------
# What pip (Oryx's installer) makes of a merged file, with local wheels only


def _wheel(folder: Path, name: str, version: str) -> str:
    """A minimal pure-Python wheel of ``name`` in ``folder``; returns its sha256."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f"VERSION = {version!r}\n".encode(),
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [
        f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}"
        for path, data in files.items()
    ]
    files[f"{dist}/RECORD"] = ("\n".join([*record, f"{dist}/RECORD,,"]) + "\n").encode()
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return hashlib.sha256(wheel.read_bytes()).hexdigest()


def _pip_install(requirements: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    (tmp_path / "merged.txt").write_text(requirements)
    return subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-index", "--find-links", str(tmp_path / "wheels"),
         "--target", str(tmp_path / "site"), "--disable-pip-version-check", "--no-cache-dir",
         "-r", str(tmp_path / "merged.txt")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.fixture
def wheels(tmp_path) -> dict[str, str]:
    (tmp_path / "wheels").mkdir()
    return {name: _wheel(tmp_path / "wheels", name, "1.0") for name in ("hostpkg", "teampkg")}


def test_pip_installs_a_merged_hashed_file_in_hash_checking_mode(tmp_path, wheels):
    host = _file(tmp_path, "host.txt", f"hostpkg==1.0 \\\n    --hash=sha256:{wheels['hostpkg']}\n")
    team = _file(tmp_path, "requirements.txt", f"teampkg==1.0 \\\n    --hash=sha256:{wheels['teampkg']}\n")
    merged = merged_requirements(host, read_requirements(team), team).decode()
    result = _pip_install(merged, tmp_path)
    assert result.returncode == 0, result.stderr
    assert {"hostpkg", "teampkg"} <= {p.name for p in (tmp_path / "site").iterdir()}


def test_pip_refuses_a_team_file_that_does_not_match_its_hash(tmp_path, wheels):
    host = _file(tmp_path, "host.txt", f"hostpkg==1.0 --hash=sha256:{wheels['hostpkg']}\n")
    team = _file(tmp_path, "requirements.txt", f"teampkg==1.0 --hash=sha256:{'0' * 64}\n")
    result = _pip_install(merged_requirements(host, read_requirements(team), team).decode(), tmp_path)
    assert result.returncode != 0
    assert "DO NOT MATCH THE HASHES" in result.stderr


def test_pip_installs_a_merged_file_of_unhashed_team_requirements_without_hash_checking(tmp_path, wheels):
    host = _file(tmp_path, "host.txt", f"hostpkg==1.0 --hash=sha256:{wheels['hostpkg']}\n")
    team = _file(tmp_path, "requirements.txt", "teampkg>=1\n")
    merged = merged_requirements(host, read_requirements(team), team).decode()
    # Kept as it was, the host's hash would make pip demand one for teampkg too.
    refused = _pip_install(f"{host.read_text()}teampkg>=1\n", tmp_path)
    assert refused.returncode != 0 and "In --require-hashes mode" in refused.stderr
    result = _pip_install(merged, tmp_path)
    assert result.returncode == 0, result.stderr
    assert {"hostpkg", "teampkg"} <= {p.name for p in (tmp_path / "site").iterdir()}
