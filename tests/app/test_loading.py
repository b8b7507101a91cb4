"""Choosing the server to host (app/loading.py, ``--server`` / ``MCP_SERVER``): every way a value can be wrong
stops start-up with a message naming the value and the reason, before the port is bound."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import httpx
import pytest
from mcp.server.mcpserver import MCPServer

from app.loading import ServerSpecError, load_server
from tests.app.serving import PROJECT_ROOT, running_server


@pytest.fixture
def team_modules(tmp_path, monkeypatch):
    """A folder on sys.path with a good server module and three bad ones."""
    (tmp_path / "good_tools.py").write_text("from mcp.server.mcpserver import MCPServer\nmcp = MCPServer('good')\n")
    (tmp_path / "raising_tools.py").write_text("import json\nraise RuntimeError('database URL not configured')\n")
    (tmp_path / "missing_dep_tools.py").write_text("import not_installed_anywhere\n")
    (tmp_path / "lowlevel_tools.py").write_text(
        "from mcp.server.mcpserver import MCPServer\napp = MCPServer('x').streamable_http_app()\nnot_a_server = 42\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_a_module_attribute_that_is_an_mcp_server_is_served(team_modules):
    assert isinstance(load_server("good_tools:mcp"), MCPServer)


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("good_tools", "is not 'MODULE:ATTR'"),
        ("good-tools:mcp", "is not 'MODULE:ATTR'"),
        ("nowhere_tools:mcp", "no module named 'nowhere_tools' on the Python path"),
        ("good_tools:server", "module 'good_tools' has no attribute 'server'"),
        ("raising_tools:mcp", "importing 'raising_tools' failed: RuntimeError: database URL not configured"),
        ("missing_dep_tools:mcp", "importing 'missing_dep_tools' failed: No module named 'not_installed_anywhere'"),
        ("lowlevel_tools:not_a_server", "is a builtins.int, not an mcp.server.mcpserver.MCPServer instance"),
        ("lowlevel_tools:app", "not an mcp.server.mcpserver.MCPServer instance (name the MCPServer itself"),
    ],
)
def test_every_bad_value_is_named_with_its_reason(team_modules, spec, reason):
    with pytest.raises(ServerSpecError) as error:
        load_server(spec)
    assert f"MCP_SERVER/--server={spec!r}" in str(error.value)
    assert reason in str(error.value)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_bad_server_stops_start_up_before_the_port_is_bound(tmp_path, workers):
    (tmp_path / "raising_tools.py").write_text("raise RuntimeError('database URL not configured')\n")
    env = {"PYTHONPATH": f"{tmp_path}:{PROJECT_ROOT}", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "app", "--port", "0", "--workers", str(workers), "--server", "raising_tools:mcp"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "importing 'raising_tools' failed: RuntimeError: database URL not configured" in result.stderr
    assert "Uvicorn running" not in result.stderr + result.stdout


def test_the_server_can_come_from_the_environment(tmp_path):
    (tmp_path / "env_tools.py").write_text(
        textwrap.dedent(
            """
            from mcp.server.mcpserver import MCPServer
            mcp = MCPServer("from-env", version="9.9.9")
            """
        )
    )
    with running_server(env={"MCP_SERVER": "env_tools:mcp", "PYTHONPATH": f"{tmp_path}:{PROJECT_ROOT}"}) as srv:
        status = httpx.get(srv.url + "/", timeout=10).json()
    assert (status["service"], status["version"]) == ("from-env", "9.9.9")
