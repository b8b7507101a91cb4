"""A team's own MCP server, written into a folder outside the project as a team would keep it.

``acme_tools`` is a package with a server module that imports a helper
module, which in turn needs a pinned pure-Python dependency from PyPI
(``roman``) that the host does not have; its requirements also name ``mcp``
with a range the host's pin satisfies, as a team's usually do. The infra
tests package it (components need only the files) and the package test
installs and runs it.
"""

from __future__ import annotations

from pathlib import Path

SERVER = "acme_tools.server:mcp"
TOOL = "to_roman"
DEPENDENCY = "roman==4.2"
REQUIREMENTS = f"# acme tools\n{DEPENDENCY}\nmcp>=2.3,<3  # the SDK the server is written against\n"

FILES = {
    "acme_tools/__init__.py": "",
    "acme_tools/numerals.py": '''"""The helper the server imports: the conversion, on the team's own dependency."""

import roman


def numeral(number: int) -> str:
    return roman.toRoman(number)
''',
    "acme_tools/server.py": '''"""Acme's MCP server."""

from mcp.server.mcpserver import MCPServer

from acme_tools.numerals import numeral

mcp = MCPServer("acme-tools")


@mcp.tool()
async def to_roman(number: int) -> str:
    """The number in Roman numerals."""
    return numeral(number)
''',
    "requirements.txt": REQUIREMENTS,
}


def write_team_server(folder: Path, files: dict[str, str | None] | None = None) -> Path:
    """Write the team's folder (``FILES``, overridden or extended by ``files``; a None value removes one)."""
    for name, text in {**FILES, **(files or {})}.items():
        path = folder / name
        if text is None:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder
