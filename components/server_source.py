"""Which MCP server the stack runs: config ``server`` (``MODULE:ATTR``) and ``serverSource`` (its folder).

Checked here, before any resource registers, as far as it can be without
installing the team's dependencies: the syntax of ``server``, that the
folder exists, that the module is one of the files the package will ship
(components/package.py's allow-list, so a module under ``tests/`` or a hidden
folder counts as missing), that the folder lists its dependencies and that
they do not contradict the host's pins (the package's contents are put
together once here for that, as components/package.py will put them). That ``ATTR`` exists and is an ``MCPServer`` is checked by the host
itself when it starts (app/loading.py), where the team's dependencies are
installed; the staging slot then fails its health check and is not swapped.

The module must be in the package: in the team's folder, or, without
``serverSource``, in the host package (``app/...``), as the bundled demo is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from components.package import APP_DIR, BUNDLED_SERVER, PROJECT_ROOT, PackageError, package_contents
from components.requirements import DEPENDENCY_FILES

# The same syntax as the host's loader (app/loading.py), which components do not import.
_SPEC = re.compile(r"^(?P<module>[A-Za-z_]\w*(\.[A-Za-z_]\w*)*):(?P<attr>[A-Za-z_]\w*(\.[A-Za-z_]\w*)*)$")


@dataclass(frozen=True)
class ServerSource:
    """The server the site and slot run, and the folder the package takes it from."""

    spec: str
    """``MODULE:ATTR`` of the ``MCPServer``, as the host reads it (``MCP_SERVER``)."""
    folder: Path | None
    """Absolute path of the team's folder; None for a server inside the host package."""


class ServerSourceError(ValueError):
    """A ``server`` or ``serverSource`` value that cannot be served: which key, its value, what is allowed."""

    def __init__(self, key: str, value: str, allowed: str) -> None:
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key} = {value!r} is not allowed: {allowed}")


def resolve_server_source(server: str, source: str, project_root: Path = PROJECT_ROOT) -> ServerSource:
    """``server`` and ``serverSource`` as config gives them (empty source: none), checked.

    Raises :class:`ServerSourceError` with the problem found.
    """
    match = _SPEC.fullmatch(server)
    if match is None:
        raise ServerSourceError(
            "server",
            server,
            "expected MODULE:ATTR, a dotted module path, a colon and the MCPServer's attribute "
            f"(e.g. acme_tools.server:mcp); the default is the bundled demo {BUNDLED_SERVER}",
        )
    folder = None
    if source:
        folder = (project_root / Path(source).expanduser()).resolve()  # an absolute source replaces the root
        if not folder.is_dir():
            raise ServerSourceError(
                "serverSource",
                source,
                f"{folder} is not a folder: expected the folder holding the server's package(s) and its "
                f"{' or '.join(DEPENDENCY_FILES)}, absolute or relative to the project root",
            )
    try:
        shipped = package_contents(project_root, folder)
    except PackageError as error:
        raise ServerSourceError("serverSource", source, str(error)) from None
    module, candidates = match["module"], _module_files(match["module"])
    if not candidates & shipped.keys():
        files = " or ".join(sorted(candidates))
        if folder is None:
            allowed = f"module {module!r} is not in the host package ({APP_DIR}/): set serverSource to the folder holding {files}"
        else:
            allowed = f"module {module!r} is not in serverSource {folder}: expected {files} there (outside tests/ and hidden folders)"
        raise ServerSourceError("server", server, allowed)
    return ServerSource(server, folder)


def _module_files(module: str) -> set[str]:
    """Archive names a module may have: ``a/b.py`` or the package ``a/b/__init__.py``."""
    path = module.replace(".", "/")
    return {f"{path}.py", f"{path}/__init__.py"}
