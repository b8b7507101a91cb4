"""The README's quick start and bring-your-own-server commands run as written.

Every command in a fenced ``bash`` block under "## Quick start" and "## Bring
your own server" is either executed or named in :data:`NOT_RUN` with the
reason; a command that is neither fails the test, so a new line in the
manual has to be classified here. Executed, from the project root, through
bash exactly as printed:

- a server start (``uv run ... python -m app ...``), in the background with
  ``PORT=0`` in its environment (the CLI's documented port default; the
  kernel picks a free port), until ``/health`` answers;
- a client (``uv run python -m app.client http://127.0.0.1:8000/mcp ...``),
  against every server the same section starts, with the URL's documented
  ``127.0.0.1:8000`` replaced by the port that server got; it must exit 0
  (its own verification passed).

The example files the Bring-your-own section prints (a `` `path`: `` line
followed by a fenced block) must be the files shipped in ``examples/acme_tools/``.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.app.serving import stop_process_group

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SECTIONS = ("## Quick start", "## Bring your own server")
EXAMPLE = ROOT / "examples" / "acme_tools"
DOCUMENTED_URL = "http://127.0.0.1:8000"
_LISTENING = re.compile(r"Uvicorn running on (http://127\.0\.0\.1:\d+)")

# Command prefixes (argv) that the test does not execute, and why.
NOT_RUN = {
    ("python3", "-m", "pip", "install", "uv"): "installs uv, which this test already runs under",
    ("uv", "sync"): "the environment running this test is that sync",
    ("uv", "run", "pytest"): "the test suite itself",
    ("pulumi",): "needs the Pulumi CLI and an Azure subscription",
}
DEPLOYED_URL = "$(pulumi"  # a client pointed at a stack output needs a deployment


def section(heading: str) -> list[str]:
    """The README lines under ``heading`` up to the next heading of the same or a higher level."""
    lines = README.read_text().splitlines()
    start = lines.index(heading) + 1
    end = next((i for i in range(start, len(lines)) if re.match(r"#{1,2} ", lines[i])), len(lines))
    return lines[start:end]


def fenced_blocks(lines: list[str]) -> Iterator[tuple[str, str, list[str]]]:
    """(info string, the line before the fence, the block's lines) for each fenced block."""
    i = 0
    while i < len(lines):
        if lines[i].startswith("```"):
            info, before = lines[i][3:].strip(), next((x for x in reversed(lines[:i]) if x.strip()), "")
            end = lines.index("```", i + 1)
            yield info, before, lines[i + 1 : end]
            i = end
        i += 1


def commands(heading: str) -> list[str]:
    """Each command of the section's bash blocks, continuation lines joined."""
    found = []
    for info, _, block in fenced_blocks(section(heading)):
        if info == "bash":
            found += [c for c in "\n".join(block).replace("\\\n", " ").splitlines() if c.strip()]
    return found


def classify(command: str) -> str:
    """``server``, ``client`` or the reason it is not run; an unknown command fails the test."""
    argv = shlex.split(command, comments=True)
    while argv and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", argv[0]):  # VAR=value before the command
        argv = argv[1:]
    for prefix, reason in NOT_RUN.items():
        if tuple(argv[: len(prefix)]) == prefix:
            return reason
    if argv[:2] == ["uv", "run"] and "python" in argv:
        module = argv[argv.index("python") :][:3]
        if module == ["python", "-m", "app.client"]:
            if any(DEPLOYED_URL in arg for arg in argv):
                return "a client of a deployed stack"
            assert DOCUMENTED_URL in command, f"the client should use the documented {DOCUMENTED_URL}: {command}"
            return "client"
        if module == ["python", "-m", "app"]:
            return "server"
    raise AssertionError(f"README command is neither run nor listed in NOT_RUN: {command!r}")


def _environment() -> dict[str, str]:
    env = {**os.environ, "PORT": "0", "PYTHONUNBUFFERED": "1"}
    uv = shutil.which("uv") or os.environ.get("UV")  # `uv run` exports UV, the path of its own binary
    assert uv, "the README's commands need uv on PATH"
    env["PATH"] = os.pathsep.join([str(Path(uv).parent), env.get("PATH", "")])
    return env


@contextmanager
def started(command: str) -> Iterator[str]:
    """Run a server command in the background; yield its base URL once /health answers."""
    process = subprocess.Popen(
        ["bash", "-c", command],
        cwd=ROOT,
        env=_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: uv and the python it starts stop together
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True).start()
    try:
        yield _healthy_url(process, lines, command)
    finally:
        stop_process_group(process, timeout=30)


def _healthy_url(process: subprocess.Popen[str], lines: list[str], command: str) -> str:
    deadline = time.monotonic() + 120  # the first `uv run --with-requirements` builds its environment
    while time.monotonic() < deadline:
        if process.poll() is not None:
            time.sleep(0.2)
            raise AssertionError(f"{command!r} exited with {process.returncode}:\n{''.join(lines)}")
        match = next((m for line in list(lines) if (m := _LISTENING.search(line))), None)
        if match:
            try:
                with urllib.request.urlopen(match[1] + "/health", timeout=2) as response:
                    if response.status == 200:
                        return match[1]
            except OSError:
                pass
        time.sleep(0.1)
    raise AssertionError(f"{command!r} did not serve /health:\n{''.join(lines)}")


@pytest.mark.parametrize("heading", SECTIONS)
def test_the_sections_commands_run_as_written(heading):
    kinds = {command: classify(command) for command in commands(heading)}
    servers = [c for c, kind in kinds.items() if kind == "server"]
    clients = [c for c, kind in kinds.items() if kind == "client"]
    assert servers and clients, f"{heading}: nothing to run in {kinds}"
    for server in servers:
        with started(server) as url:
            for client in clients:
                result = subprocess.run(
                    ["bash", "-c", client.replace(DOCUMENTED_URL, url)],
                    cwd=ROOT,
                    env=_environment(),
                    capture_output=True,
                    text=True,
                    timeout=180,
                )
                assert result.returncode == 0, f"{client!r} against {server!r}:\n{result.stdout}{result.stderr}"


def test_the_example_files_in_the_manual_are_the_shipped_ones():
    printed = {}
    for _, before, block in fenced_blocks(section("## Bring your own server")):
        if match := re.fullmatch(r"`(?P<path>[\w./]+)`( \(.*\))?:", before.strip()):
            printed[match["path"]] = "\n".join(block) + "\n"
    assert set(printed) == {"acme_tools/server.py", "acme_tools/numerals.py", "requirements.txt"}
    for path, text in printed.items():
        assert (EXAMPLE / path).read_text() == text, path
    assert (EXAMPLE / "acme_tools" / "__init__.py").read_text() == ""
