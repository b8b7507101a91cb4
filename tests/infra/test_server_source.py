"""config server / serverSource: what the stack serves and from which folder, checked before anything is built."""

from __future__ import annotations

import os

import pytest

from app.settings import DEFAULT_SERVER
from components.package import PROJECT_ROOT
from components.server_source import BUNDLED_SERVER, ServerSource, ServerSourceError, resolve_server_source
from tests.team_server import SERVER, write_team_server


def _error(server: str, source: str = "") -> ServerSourceError:
    with pytest.raises(ServerSourceError) as raised:
        resolve_server_source(server, source)
    return raised.value


def test_the_default_is_the_hosts_own_default_served_from_the_host_package():
    assert BUNDLED_SERVER == DEFAULT_SERVER
    assert resolve_server_source(BUNDLED_SERVER, "") == ServerSource(BUNDLED_SERVER, None)


def test_a_team_folder_outside_the_project_is_taken_as_an_absolute_path(tmp_path):
    folder = write_team_server(tmp_path / "acme")
    assert resolve_server_source(SERVER, str(folder)) == ServerSource(SERVER, folder)


def test_a_relative_folder_is_relative_to_the_project_root_not_the_working_directory(tmp_path, monkeypatch):
    folder = write_team_server(tmp_path / "acme")
    monkeypatch.chdir(tmp_path)
    relative = os.path.relpath(folder, PROJECT_ROOT)
    assert relative.startswith("..")
    assert resolve_server_source(SERVER, relative).folder == folder.resolve()


def test_a_package_module_and_a_pyproject_are_enough(tmp_path):
    folder = write_team_server(
        tmp_path / "acme",
        {"requirements.txt": None, "pyproject.toml": '[project]\nname = "acme"\ndependencies = ["roman==4.2"]\n'},
    )
    assert resolve_server_source("acme_tools:mcp", str(folder)).folder == folder


@pytest.mark.parametrize(
    "server", ["acme_tools.server", "acme_tools.server:", ":mcp", "acme-tools.server:mcp", "acme tools:mcp", "a..b:c"]
)
def test_a_server_that_is_not_module_colon_attr_is_refused(tmp_path, server):
    error = _error(server, str(write_team_server(tmp_path / "acme")))
    assert (error.key, error.value) == ("server", server)
    assert error.allowed.startswith("expected MODULE:ATTR") and BUNDLED_SERVER in error.allowed


def test_a_missing_folder_is_refused_naming_where_it_was_looked_for(tmp_path):
    error = _error(SERVER, str(tmp_path / "nowhere"))
    assert (error.key, error.value) == ("serverSource", str(tmp_path / "nowhere"))
    assert error.allowed.startswith(f"{tmp_path / 'nowhere'} is not a folder")
    assert "requirements.txt or pyproject.toml" in error.allowed


def test_a_file_is_not_a_folder(tmp_path):
    (tmp_path / "server.py").write_text("")
    assert _error(SERVER, str(tmp_path / "server.py")).key == "serverSource"


@pytest.mark.parametrize(
    "moved",
    [
        {"acme_tools/server.py": None},
        {"acme_tools/server.py": None, "tests/acme_tools/server.py": ""},  # tests are never packaged
        {"acme_tools/server.py": None, ".hidden/acme_tools/server.py": ""},
    ],
)
def test_a_module_the_package_would_not_ship_is_refused(tmp_path, moved):
    folder = write_team_server(tmp_path / "acme", moved)
    error = _error(SERVER, str(folder))
    assert (error.key, error.value) == ("server", SERVER)
    assert error.allowed.startswith(f"module 'acme_tools.server' is not in serverSource {folder}")
    assert "acme_tools/server.py or acme_tools/server/__init__.py" in error.allowed


def test_without_server_source_the_module_must_be_in_the_host_package():
    error = _error(SERVER)
    assert (error.key, error.value) == ("server", SERVER)
    assert error.allowed.startswith("module 'acme_tools.server' is not in the host package (app/): set serverSource")


def test_a_folder_without_requirements_or_pyproject_is_refused(tmp_path):
    folder = write_team_server(tmp_path / "acme", {"requirements.txt": None})
    error = _error(SERVER, str(folder))
    assert error.key == "serverSource"
    assert error.allowed == f"{folder} has no requirements.txt or pyproject.toml listing the server's dependencies"


def test_requirements_that_contradict_a_host_pin_are_refused(tmp_path):
    folder = write_team_server(tmp_path / "acme", {"requirements.txt": "roman==4.2\nmcp<2\n"})
    error = _error(SERVER, str(folder))
    assert error.key == "serverSource"
    assert "'mcp<2' conflicts with the host's pin 'mcp==2.3.0'" in error.allowed


def test_a_team_package_named_like_the_host_is_refused(tmp_path):
    folder = write_team_server(tmp_path / "acme", {"app/__init__.py": ""})
    error = _error(SERVER, str(folder))
    assert error.key == "serverSource"
    assert "app/__init__.py: a top-level 'app' would shadow the host's package" in error.allowed
