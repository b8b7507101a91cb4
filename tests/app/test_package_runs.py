"""The package is self-sufficient: what App Service gets is all it needs to run.

As App Service does it: the zip is unpacked into an empty folder, a fresh
virtualenv gets the zip's own requirements.txt and nothing else (Oryx's
`pip install -r requirements.txt`), and the site's exact startup command runs
in that folder with the venv active and the port in $PORT. A real MCP client
then calls a tool over HTTP. Once for the bundled demo, and once for a team's
own server kept outside the project, packaged by the stack program itself
(under mocks) and started with the startup command and app settings the
program gave the site.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from mcp import Client

from components.package import PACKAGE_PATH, PROJECT_ROOT, build_package
from components.site_config import STARTUP_COMMAND
from tests.app.serving import stop_process_group
from tests.infra.conftest import mocked_stack
from tests.team_server import DEPENDENCY, SERVER, TOOL, write_team_server

LISTENING = re.compile(r"Uvicorn running on http://0\.0\.0\.0:(\d+)")


def _uv() -> str:
    # `uv run` exports the path of its own binary as UV; fall back to PATH.
    uv = os.environ.get("UV") or shutil.which("uv")
    assert uv, "uv is required (it runs this test suite)"
    return uv


def _install(package: Path, root: Path) -> Path:
    """``package`` unpacked into ``root``/wwwroot with its own virtualenv, like /home/site/wwwroot after Oryx."""
    wwwroot = root / "wwwroot"
    wwwroot.mkdir()
    with zipfile.ZipFile(package) as archive:
        archive.extractall(wwwroot)
    venv = root / "antenv"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON", "UV_PROJECT"))}
    subprocess.run([_uv(), "venv", "--quiet", "--python", sys.executable, str(venv)], env=clean, check=True)
    install = subprocess.run(
        [_uv(), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), "-r", "requirements.txt"],
        cwd=wwwroot,
        env=clean,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, f"installing the package's requirements.txt failed:\n{install.stderr}"
    return wwwroot


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The unpacked demo package with its own virtualenv."""
    return _install(build_package().path, tmp_path_factory.mktemp("appservice"))


def _site_environment(wwwroot: Path) -> dict[str, str]:
    """The environment App Service gives the startup command: venv active, PORT set, nothing from this checkout."""
    venv_bin = wwwroot.parent / "antenv" / "bin"
    return {
        "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin",
        "VIRTUAL_ENV": str(venv_bin.parent),
        "HOME": str(wwwroot.parent),
        "PORT": "0",  # App Service picks the port; 0 lets the kernel pick a free one here
        "WEBSITE_INSTANCE_ID": "packaged-instance",
        "MCP_SLOT_NAME": "staging",
        "PYTHONUNBUFFERED": "1",
    }


def test_the_app_imports_from_the_unpacked_folder_only(site):
    result = subprocess.run(
        ["python", "-c", "import app, mcp, sys; print(app.__file__); print(sys.prefix)"],
        cwd=site,
        env=_site_environment(site),
        capture_output=True,
        text=True,
        check=True,
    )
    app_file, prefix = result.stdout.split()
    assert Path(app_file).is_relative_to(site)
    assert Path(prefix) == site.parent / "antenv"


@contextlib.contextmanager
def _serving(command: str, wwwroot: Path, env: Mapping[str, str]) -> Iterator[str]:
    """Run ``command`` in ``wwwroot`` as App Service does; yield its URL once /health answers; SIGTERM after."""
    process = subprocess.Popen(
        ["/bin/sh", "-c", command],
        cwd=wwwroot,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    port: list[int] = []
    found = threading.Event()

    def drain() -> None:
        for line in process.stdout:
            lines.append(line)
            if not port and (match := LISTENING.search(line)):
                port.append(int(match.group(1)))
                found.set()
        found.set()

    threading.Thread(target=drain, daemon=True).start()
    try:
        assert found.wait(60) and port, f"the startup command did not start a server:\n{''.join(lines)}"
        url = f"http://127.0.0.1:{port[0]}"
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, f"/health never answered:\n{''.join(lines)}"
                time.sleep(0.1)
        yield url
    finally:
        stop_process_group(process, timeout=20)


def _call(url: str, tool: str, arguments: dict):
    async def call():
        async with Client(url + "/mcp", mode="2026-07-28") as client:
            return await client.call_tool(tool, arguments)

    return asyncio.run(call())


def test_the_startup_command_serves_mcp_from_the_package(site):
    assert STARTUP_COMMAND.startswith("python -m app")
    with _serving(STARTUP_COMMAND, site, _site_environment(site)) as url:
        result = _call(url, "whoami", {})
    assert not result.is_error, result
    assert result.structured_content["instance_id"] == "packaged-instance"
    assert result.structured_content["slot_name"] == "staging"


def test_health_reports_the_build_id_the_package_carries(site):
    # What the delivery reads to tell which build production serves (components/delivery.py, the swap).
    with _serving(STARTUP_COMMAND, site, _site_environment(site)) as url:
        with urllib.request.urlopen(url + "/health", timeout=5) as response:
            health = json.load(response)
    assert health == {"status": "ok", "build": build_package().build_id}


# What the program's site settings hold that must not leave this machine: with a connection string the host
# would export telemetry to App Insights, and nothing in tests reaches beyond 127.0.0.1.
OUTBOUND_SETTINGS = ("APPLICATIONINSIGHTS_CONNECTION_STRING",)
TEAM_HANDLE_KEYS = "k1:" + "t" * 40
KEY_VAULT_SECRET = "azure-native:keyvault:Secret"
KEY_VAULT_REFERENCE = re.compile(r"@Microsoft\.KeyVault\(SecretUri=.+/secrets/([^/]+)/\)")


@dataclass(frozen=True)
class TeamSite:
    """A team's server as the stack program packaged and configured it, unpacked and installed."""

    source: Path
    wwwroot: Path
    startup_command: str
    app_settings: dict[str, str]
    """The staging slot's app settings (where a deploy lands first), those reaching outside left out."""


@pytest.fixture(scope="module")
def team_site(tmp_path_factory) -> TeamSite:
    source = write_team_server(tmp_path_factory.mktemp("acme-checkout") / "acme")
    with mocked_stack() as infra:
        config = {
            **infra.stack_config("prod"),
            "mcpscale-azure:server": SERVER,
            "mcpscale-azure:serverSource": str(source),
            "mcpscale-azure:handleKeys": TEAM_HANDLE_KEYS,
        }
        run = infra.run_main(config, secret_keys=["handleKeys"])
    package = PROJECT_ROOT / PACKAGE_PATH  # where the program wrote it; its hash is the deploy trigger
    assert hashlib.sha256(package.read_bytes()).hexdigest() == run.outputs["packageSha256"].value
    slot = run.one("azure-native:web:WebAppSlot")
    # App Service resolves Key Vault references with the slot's identity before the app starts; so does this.
    vault = {secret.get("secretName"): secret.get("properties.value") for secret in run.of_type(KEY_VAULT_SECRET)}
    settings = {
        name: vault[reference[1]] if (reference := KEY_VAULT_REFERENCE.fullmatch(value)) else value
        for name, value in run.one("azure-native:web:WebAppApplicationSettingsSlot").get("properties").items()
    }
    return TeamSite(
        source=source,
        wwwroot=_install(package, tmp_path_factory.mktemp("appservice-team")),
        startup_command=slot.get("siteConfig.appCommandLine"),
        app_settings={k: v for k, v in settings.items() if k not in OUTBOUND_SETTINGS},
    )


def _team_environment(site: TeamSite) -> dict[str, str]:
    return {**_site_environment(site.wwwroot), **site.app_settings}


def test_the_team_server_comes_from_a_folder_outside_the_project(team_site):
    assert not team_site.source.is_relative_to(PROJECT_ROOT)
    assert (team_site.wwwroot / "acme_tools" / "server.py").read_bytes() == (
        team_site.source / "acme_tools" / "server.py"
    ).read_bytes()
    assert DEPENDENCY in (team_site.wwwroot / "requirements.txt").read_text().splitlines()


def test_the_team_code_and_its_dependency_import_from_the_unpacked_folder_and_its_venv(team_site):
    result = subprocess.run(
        ["python", "-c", "import acme_tools.server, roman; print(acme_tools.server.__file__); print(roman.__file__)"],
        cwd=team_site.wwwroot,
        env=_team_environment(team_site),
        capture_output=True,
        text=True,
        check=True,
    )
    server_file, dependency_file = result.stdout.split()
    assert Path(server_file).is_relative_to(team_site.wwwroot)
    assert Path(dependency_file).is_relative_to(team_site.wwwroot.parent / "antenv")


def test_the_sites_startup_command_and_app_settings_serve_the_team_tool(team_site):
    # The package names its server (not an app setting, which a swap would leave behind); nothing else picks it.
    assert "MCP_SERVER" not in team_site.app_settings
    assert (team_site.wwwroot / "mcp-server.txt").read_text() == f"{SERVER}\n"
    with _serving(team_site.startup_command, team_site.wwwroot, _team_environment(team_site)) as url:
        result = _call(url, TOOL, {"number": 2026})
    assert not result.is_error, result
    assert [block.text for block in result.content] == ["MMXXVI"]
