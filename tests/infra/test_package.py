"""The deployable package: deterministic bytes, a content hash, and only allow-listed files."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import zipfile
from pathlib import Path, PurePosixPath

import pytest

from components.package import (
    BUILD_FILE,
    BUNDLED_SERVER,
    PACKAGE_PATH,
    PROJECT_ROOT,
    SERVER_FILE,
    PackageError,
    archive_bytes,
    build_package,
    collect_files,
)
from tests.team_server import FILES, REQUIREMENTS, write_team_server


def _archive(path: Path) -> zipfile.ZipFile:
    return zipfile.ZipFile(path)


def _copy_app(tmp_path: Path) -> Path:
    """A private project root holding a copy of the real app/ (so tests can plant files)."""
    root = tmp_path / "project"
    shutil.copytree(PROJECT_ROOT / "app", root / "app", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_building_twice_gives_identical_bytes_and_hash(tmp_path):
    first = build_package(output=PurePosixPath("dist/a.zip"), project_root=_copy_app(tmp_path))
    first_bytes = first.path.read_bytes()
    second = build_package(output=PurePosixPath("dist/b.zip"), project_root=first.path.parents[1])
    assert second.path.read_bytes() == first_bytes
    assert first.sha256 == second.sha256 == hashlib.sha256(first_bytes).hexdigest()


def test_bytes_do_not_depend_on_timestamps_permissions_or_walk_order(tmp_path):
    root = _copy_app(tmp_path)
    before = build_package(root).path.read_bytes()
    for path in (root / "app").rglob("*"):
        if path.is_file():
            os.utime(path, (1_900_000_000, 1_900_000_000))
            path.chmod(0o755)
    # Re-create the folder so the directory entries come back in another order.
    shuffled = tmp_path / "shuffled"
    for path in sorted((root / "app").rglob("*"), reverse=True):
        if path.is_file():
            target = shuffled / path.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    assert build_package(root).path.read_bytes() == before
    assert build_package(shuffled).path.read_bytes() == before


def test_any_content_change_changes_the_hash(tmp_path):
    root = _copy_app(tmp_path)
    before = build_package(root).sha256
    main = root / "app" / "main.py"
    main.write_text(main.read_text() + "\n# changed\n")
    assert build_package(root).sha256 != before


def test_entries_have_fixed_metadata(tmp_path):
    package = build_package(_copy_app(tmp_path))
    with _archive(package.path) as archive:
        assert archive.comment == b""
        for info in archive.infolist():
            assert info.date_time == (1980, 1, 1, 0, 0, 0), info.filename
            assert stat.S_IMODE(info.external_attr >> 16) == 0o644, info.filename
            assert info.compress_type == zipfile.ZIP_STORED, info.filename
            assert info.extra == b"", info.filename
        names = archive.namelist()
    assert names == sorted(names)
    assert tuple(names) == package.entries


def test_requirements_sit_at_the_zip_root_for_oryx(tmp_path):
    root = _copy_app(tmp_path)
    package = build_package(root)
    with _archive(package.path) as archive:
        assert archive.read("requirements.txt") == (root / "app" / "requirements.txt").read_bytes()
        assert "app/requirements.txt" not in archive.namelist()


def test_the_real_app_is_packaged_whole(tmp_path):
    files = collect_files(PROJECT_ROOT)
    expected = {
        path.relative_to(PROJECT_ROOT).as_posix()
        for path in (PROJECT_ROOT / "app").rglob("*.py")
        if "__pycache__" not in path.parts
    }
    assert set(files) == expected | {"requirements.txt"}
    assert {"app/__init__.py", "app/__main__.py"} <= set(files)


def test_nothing_outside_the_allow_list_gets_in(tmp_path):
    root = _copy_app(tmp_path)
    app = root / "app"
    planted = {
        "__pycache__/main.cpython-311.pyc": b"\0",
        "tools/__pycache__/x.cpython-311.pyc": b"\0",
        "stale.pyc": b"\0",
        ".env": b"MCP_HANDLE_KEYS=k1:secret\n",
        ".hidden/module.py": b"x = 1\n",
        ".venv/lib/python3.11/site-packages/evil.py": b"x = 1\n",
        "localenv/pyvenv.cfg": b"home = /usr\n",
        "localenv/lib/site.py": b"x = 1\n",
        "tests/test_app.py": b"def test(): pass\n",
        "test_local.py": b"def test(): pass\n",
        "handles_test.py": b"def test(): pass\n",
        "conftest.py": b"",
        "notes.txt": b"todo\n",
        "secrets.json": b"{}",
        "tools/.DS_Store": b"\0",
    }
    for name, content in planted.items():
        path = app / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    (app / "tools" / "__init__.py").write_text("")

    package = build_package(root)
    with _archive(package.path) as archive:
        names = set(archive.namelist())
    assert "app/tools/__init__.py" in names  # a real subpackage is kept
    leaked = {n for n in names if n.removeprefix("app/") in planted}
    assert leaked == set()
    for name in names:
        assert name in ("requirements.txt", BUILD_FILE) or (name.startswith("app/") and name.endswith(".py")), name


def test_package_is_written_under_the_ignored_dist_folder(tmp_path):
    root = _copy_app(tmp_path)
    package = build_package(root)
    assert PACKAGE_PATH == PurePosixPath("dist/app.zip")
    assert package.path == root / "dist" / "app.zip"
    assert package.relative_path == "dist/app.zip"
    assert [p.name for p in (root / "dist").iterdir()] == ["app.zip"]  # no temp file left behind
    gitignore = (PROJECT_ROOT / ".gitignore").read_text().split()
    assert "dist/" in gitignore


@pytest.mark.parametrize("missing", ["__main__.py", "requirements.txt"])
def test_a_package_without_entry_point_or_requirements_is_refused(tmp_path, missing):
    root = _copy_app(tmp_path)
    (root / "app" / missing).unlink()
    with pytest.raises(FileNotFoundError, match=missing):
        build_package(root)


def _team(tmp_path: Path, files: dict[str, str | None] | None = None) -> Path:
    """The team's server folder, outside the project copy."""
    return write_team_server(tmp_path / "elsewhere" / "acme", files)


def test_a_team_server_ships_beside_the_host_as_laid_out_in_its_folder(tmp_path):
    root, team = _copy_app(tmp_path), _team(tmp_path)
    package = build_package(root, source=team)
    team_modules = {name for name in FILES if name.endswith(".py")}
    assert set(package.entries) == set(collect_files(root)) | team_modules | {BUILD_FILE}
    with _archive(package.path) as archive:
        for name in team_modules:
            assert archive.read(name) == (team / name).read_bytes()


def test_a_team_server_package_has_the_hosts_pins_then_the_team_requirements(tmp_path):
    root = _copy_app(tmp_path)
    with _archive(build_package(root, source=_team(tmp_path)).path) as archive:
        requirements = archive.read("requirements.txt").decode()
    # The team's requirements carry no hashes, so neither do the host's pins (components/requirements.py).
    assert requirements.startswith("# hash checking off: requirements.txt")
    assert "--hash=" not in requirements and "\nmcp==2.3.0\n" in requirements
    assert requirements.endswith("\nroman==4.2\nmcp<3,>=2.3\n")


def test_a_team_server_package_is_deterministic_wherever_the_folder_sits(tmp_path):
    root = _copy_app(tmp_path)
    first = build_package(root, PurePosixPath("dist/a.zip"), source=_team(tmp_path))
    moved = write_team_server(tmp_path / "another" / "checkout")
    for path in moved.rglob("*"):
        os.utime(path, (1_900_000_000, 1_900_000_000))
    second = build_package(root, PurePosixPath("dist/b.zip"), source=moved)
    assert second.path.read_bytes() == first.path.read_bytes()
    assert second.sha256 == first.sha256


@pytest.mark.parametrize(
    "change",
    [
        {"acme_tools/numerals.py": FILES["acme_tools/numerals.py"] + "\n# changed\n"},
        {"acme_tools/extra.py": "x = 1\n"},
        {"requirements.txt": REQUIREMENTS + "attrs>=20\n"},
    ],
)
def test_any_change_to_the_team_server_or_its_requirements_changes_the_hash(tmp_path, change):
    root = _copy_app(tmp_path)
    before = build_package(root, source=_team(tmp_path)).sha256
    after = build_package(root, source=write_team_server(tmp_path / "changed", change)).sha256
    assert after != before


def test_the_team_folder_gets_the_same_allow_list_as_the_host(tmp_path):
    planted = {
        "acme_tools/__pycache__/server.cpython-312.pyc": "",
        "acme_tools/tests/test_server.py": "",
        "tests/test_acme.py": "",
        "conftest.py": "",
        ".venv/lib/site.py": "",
        "venv/pyvenv.cfg": "home = /usr\n",
        "venv/lib/site.py": "",
        ".env": "SECRET=1\n",
        "README.md": "acme\n",
    }
    package = build_package(_copy_app(tmp_path), source=_team(tmp_path, planted))
    assert not set(planted) & set(package.entries)
    assert "requirements.txt" in package.entries and "pyproject.toml" not in package.entries


def test_a_team_server_that_conflicts_with_a_host_pin_is_not_packaged(tmp_path):
    root = _copy_app(tmp_path)
    with pytest.raises(PackageError, match="'mcp<2' conflicts with the host's pin 'mcp==2.3.0'"):
        build_package(root, source=_team(tmp_path, {"requirements.txt": "mcp<2\n"}))
    assert not (root / "dist").exists()


def test_a_team_server_without_a_dependency_file_is_not_packaged(tmp_path):
    with pytest.raises(PackageError, match="has no requirements.txt or pyproject.toml"):
        build_package(_copy_app(tmp_path), source=_team(tmp_path, {"requirements.txt": None}))


@pytest.mark.parametrize("shadow", ["app/__init__.py", "app.py"])
def test_a_team_module_named_app_would_shadow_the_host_and_is_refused(tmp_path, shadow):
    with pytest.raises(PackageError, match=f"holds {shadow}: a top-level 'app' would shadow"):
        build_package(_copy_app(tmp_path), source=_team(tmp_path, {shadow: ""}))


def test_the_package_names_the_server_it_serves_so_the_choice_travels_with_the_code(tmp_path):
    from app.settings import SERVER_FILE as HOST_READS
    from app.settings import server_spec

    root, team = _copy_app(tmp_path), _team(tmp_path)
    package = build_package(root, source=team, server="acme_tools.server:mcp")
    with _archive(package.path) as archive:
        assert archive.read(SERVER_FILE) == b"acme_tools.server:mcp\n"
    assert HOST_READS.name == SERVER_FILE  # the host reads the file the package writes, beside app/
    unpacked = tmp_path / "wwwroot"
    with _archive(package.path) as archive:
        archive.extractall(unpacked)
    assert server_spec({}, unpacked / SERVER_FILE) == "acme_tools.server:mcp"


def test_the_bundled_demo_needs_no_server_file(tmp_path):
    root = _copy_app(tmp_path)
    assert SERVER_FILE not in build_package(root).entries
    assert build_package(root).sha256 == build_package(root, server=BUNDLED_SERVER).sha256


def test_the_package_carries_its_build_id_which_the_host_reports_on_health(tmp_path):
    from app.settings import BUILD_FILE as HOST_READS
    from app.settings import package_build

    root = _copy_app(tmp_path)
    package = build_package(root)
    with _archive(package.path) as archive:
        without_marker = {name: archive.read(name) for name in archive.namelist() if name != BUILD_FILE}
        assert archive.read(BUILD_FILE) == f"{package.build_id}\n".encode()
    # The id is the hash of the package as it would be without the marker (a zip cannot hold its own hash).
    assert package.build_id == hashlib.sha256(archive_bytes(without_marker)).hexdigest() != package.sha256
    assert HOST_READS.name == BUILD_FILE
    unpacked = tmp_path / "wwwroot"
    with _archive(package.path) as archive:
        archive.extractall(unpacked)
    assert package_build(unpacked / BUILD_FILE) == package.build_id


def test_a_changed_package_has_another_build_id_and_the_same_content_the_same(tmp_path):
    root = _copy_app(tmp_path)
    first = build_package(root, PurePosixPath("dist/a.zip"))
    assert build_package(root, PurePosixPath("dist/b.zip")).build_id == first.build_id
    main = root / "app" / "main.py"
    main.write_text(main.read_text() + "\n# changed\n")
    assert build_package(root, PurePosixPath("dist/c.zip")).build_id != first.build_id
