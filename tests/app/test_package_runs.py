"""The package is self-sufficient: what App Service gets is all it needs to run.

As App Service does it: the zip is unpacked into an empty folder, a fresh
virtualenv gets the zip's own requirements.txt and nothing else (Oryx's
`pip install -r requirements.txt`), and the site's exact startup command runs
in that folder with the venv active and the port in $PORT. A real MCP client
then calls a tool over HTTP.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest
from mcp import Client

from components.package import build_package
from components.site_config import STARTUP_COMMAND

LISTENING = re.compile(r"Uvicorn running on http://0\.0\.0\.0:(\d+)")


def _uv() -> str:
    # `uv run` exports the path of its own binary as UV; fall back to PATH.
    uv = os.environ.get("UV") or shutil.which("uv")
    assert uv, "uv is required (it runs this test suite)"
    return uv


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The unpacked package with its own virtualenv, like /home/site/wwwroot after an Oryx build."""
    root = tmp_path_factory.mktemp("appservice")
    wwwroot = root / "wwwroot"
    wwwroot.mkdir()
    with zipfile.ZipFile(build_package().path) as archive:
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


def test_the_startup_command_serves_mcp_from_the_package(site):
    assert STARTUP_COMMAND.startswith("python -m app")
    process = subprocess.Popen(
        ["/bin/sh", "-c", STARTUP_COMMAND],
        cwd=site,
        env=_site_environment(site),
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

        async def call() -> dict:
            async with Client(url + "/mcp", mode="2026-07-28") as client:
                result = await client.call_tool("whoami", {})
                assert not result.is_error, result
                return result.structured_content

        whoami = asyncio.run(call())
        assert whoami["instance_id"] == "packaged-instance"
        assert whoami["slot_name"] == "staging"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
