"""Every private name of a third-party library the app uses is listed (app/private_surface.py), is there in the
installed library with the shape the app relies on, and its library is pinned to the release it was read from.

An upgrade that moves a name fails `test_each_private_name_is_there_with_its_shape` for that name alone; a new
reach into a library's internals that is not listed fails `test_every_private_name_the_app_reaches_is_listed`.
"""

from __future__ import annotations

import ast
import asyncio
import logging
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from app.private_surface import LIBRARIES, Library, PrivateName, missing, missing_on, version_problem

ROOT = Path(__file__).resolve().parents[2]
ENTRIES = [entry for library in LIBRARIES for entry in library.names]


def _dispatch_context() -> Any:
    from mcp.server._streamable_http_modern import _SingleExchangeDispatchContext
    from mcp.shared.message import ServerMessageMetadata
    from mcp.shared.transport_context import TransportContext

    transport = TransportContext(kind="streamable-http", can_send_request=False)
    return _SingleExchangeDispatchContext(transport=transport, request_id=1, message_metadata=ServerMessageMetadata())


def _server() -> Any:
    from mcp.server.mcpserver import MCPServer

    return MCPServer("surface")


def _tool() -> Any:
    from mcp.server.mcpserver.tools import Tool

    def whoami() -> str:
        return "me"

    return Tool.from_function(whoami)


def _boundary() -> Any:
    from mcp.server.request_state import RequestStateBoundary, RequestStateSecurity

    return RequestStateBoundary(RequestStateSecurity(keys=["s" * 32]), default_audience="surface")


def _http_protocol() -> Any:
    from uvicorn.config import Config
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    from uvicorn.server import ServerState

    async def app(scope, receive, send) -> None:
        pass

    loop = asyncio.new_event_loop()
    try:
        return HttpToolsProtocol(
            config=Config(app=app, lifespan="off"), server_state=ServerState(), app_state={}, _loop=loop
        )
    finally:
        loop.close()


def _cycle() -> Any:
    from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

    log = logging.getLogger("surface")
    return RequestResponseCycle(
        scope={},
        transport=None,
        flow=None,
        logger=log,
        access_logger=log,
        access_log=False,
        default_headers=[],
        message_event=asyncio.Event(),
        expect_100_continue=False,
        keep_alive=True,
        on_response=lambda: None,
    )


def _rate_limited_sampler() -> Any:
    from azure.monitor.opentelemetry.exporter.export.trace._rate_limited_sampling import RateLimitedSampler

    return RateLimitedSampler(5.0)


def _contextvars_runtime() -> Any:
    from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext

    return ContextVarsRuntimeContext()


def _non_recording_span() -> Any:
    from opentelemetry.trace import INVALID_SPAN_CONTEXT, NonRecordingSpan

    return NonRecordingSpan(INVALID_SPAN_CONTEXT)


# An instance of each listed class whose instance attributes the app relies on, made as the library makes one.
INSTANCES: dict[str, Callable[[], Any]] = {
    "mcp.server._streamable_http_modern._SingleExchangeDispatchContext": _dispatch_context,
    "mcp.server.mcpserver.MCPServer": _server,
    "mcp.server.mcpserver.tools.Tool": _tool,
    "mcp.server.request_state.RequestStateBoundary": _boundary,
    "uvicorn.protocols.http.httptools_impl.HttpToolsProtocol": _http_protocol,
    "uvicorn.protocols.http.httptools_impl.RequestResponseCycle": _cycle,
    "azure.monitor.opentelemetry.exporter.export.trace._rate_limited_sampling.RateLimitedSampler": (
        _rate_limited_sampler
    ),
    "opentelemetry.context.contextvars_context.ContextVarsRuntimeContext": _contextvars_runtime,
    "opentelemetry.trace.NonRecordingSpan": _non_recording_span,
}


def test_every_entry_with_instance_attributes_has_an_instance_to_check():
    assert {entry.path for entry in ENTRIES if entry.instance_attributes} == set(INSTANCES)


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda entry: entry.path)
def test_each_private_name_is_there_with_its_shape(entry: PrivateName):
    assert missing(entry) is None
    if entry.instance_attributes:
        assert missing_on(entry, INSTANCES[entry.path]()) == []


def _pins() -> dict[str, Requirement]:
    groups = tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]
    return {
        (requirement := Requirement(spec)).name: requirement
        for group in ("app", "telemetry")
        for spec in groups[group]
        if isinstance(spec, str)
    }


def _next_release(series: str) -> str:
    """The first release after ``series``: 2.3 -> 2.4, 1.0.0b58 -> 1.0.0b59."""
    version = Version(series)
    if version.pre is not None:
        return f"{version.base_version}{version.pre[0]}{version.pre[1] + 1}"
    *head, last = version.release
    return ".".join(map(str, [*head, last + 1]))


@pytest.mark.parametrize("library", LIBRARIES, ids=lambda library: library.distribution)
def test_each_library_is_the_tested_release_and_pinned_to_it(library: Library):
    assert version_problem(library) is None
    pin = _pins().get(library.distribution)
    assert pin is not None, f"{library.distribution} is not pinned in the app or telemetry group of pyproject.toml"
    from importlib import metadata

    assert pin.specifier.contains(metadata.version(library.distribution), prereleases=True)
    assert not pin.specifier.contains(_next_release(library.series), prereleases=True), (
        f"{library.distribution}: {pin} admits {_next_release(library.series)}, whose internals nobody checked"
    )


def test_a_changed_name_is_reported_by_path_and_user():
    entry = PrivateName("opentelemetry.trace", "NoSuchSpan", "class", "app.somewhere")
    assert missing(entry) == "opentelemetry.trace.NoSuchSpan: no such name (used by app.somewhere)"
    moved = PrivateName("opentelemetry.no_such_module", "Span", "class", "app.somewhere")
    assert "cannot import opentelemetry.no_such_module" in missing(moved)
    renamed = PrivateName("opentelemetry.trace", "format_trace_id", "function", "app.somewhere", ("trace_id", "width"))
    assert missing(renamed) == "opentelemetry.trace.format_trace_id: no parameter(s) width (used by app.somewhere)"
    not_a_class = PrivateName("opentelemetry.trace", "format_trace_id", "class", "app.somewhere")
    assert "expected a class, found function" in missing(not_a_class)
    span = PrivateName("opentelemetry.trace", "NonRecordingSpan", "class", "app.somewhere", (), ("_context.nope",))
    assert missing_on(span, _non_recording_span()) == [
        "opentelemetry.trace.NonRecordingSpan instance: no attribute _context.nope (used by app.somewhere)"
    ]


# --- nothing unlisted: a scan of app/ for private names reached on other libraries' objects -------------------------


def _app_sources() -> dict[Path, ast.Module]:
    return {path: ast.parse(path.read_text(), str(path)) for path in sorted((ROOT / "app").rglob("*.py"))}


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _own_names(trees: dict[Path, ast.Module]) -> set[str]:
    """Every private name the app defines itself: functions, classes, module globals, attributes it assigns,
    ``__slots__`` entries and keyword arguments of its own classes."""
    own: set[str] = set()
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                own.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                own.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                own.add(node.attr)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                own.add(node.target.id)
    return own


def _listed_names() -> set[str]:
    listed: set[str] = set()
    for entry in ENTRIES:
        listed.update(entry.module.split("."))
        listed.update(entry.name.split("."))
        for path in entry.instance_attributes:
            listed.update(path.split("."))
    return listed


# namedtuple's documented API, underscored so as not to clash with field names.
PUBLIC_UNDERSCORED = frozenset({"_asdict", "_fields", "_make", "_replace"})


def _reached(node: ast.AST, own: set[str]) -> list[str]:
    """The private names of other libraries ``node`` reaches: a private module or name it imports, a private
    attribute the app never defines itself, or one named by a constant in getattr/hasattr/setattr."""
    names: list[str] = []
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and not node.module.startswith("app"):
        names = [*node.module.split("."), *(alias.name for alias in node.names)]
    elif isinstance(node, ast.Import):
        names = [part for alias in node.names for part in alias.name.split(".")]
    elif isinstance(node, ast.Attribute) and node.attr not in own:
        names = [node.attr]
    elif (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("getattr", "hasattr", "setattr")
        and len(node.args) >= 2
        and isinstance(node.args[1], ast.Constant)
        and isinstance(node.args[1].value, str)
        and node.args[1].value not in own
    ):
        names = [node.args[1].value]
    return [name for name in names if _is_private(name) and name not in PUBLIC_UNDERSCORED]


def test_every_private_name_the_app_reaches_is_listed():
    """Private modules and names imported from a library, and private attributes read on objects that are not the
    app's own, all appear in app/private_surface.py."""
    trees = _app_sources()
    own, listed = _own_names(trees), _listed_names()
    unlisted = [
        f"{path.relative_to(ROOT)}:{node.lineno}: {name}"
        for path, tree in trees.items()
        for node in ast.walk(tree)
        for name in _reached(node, own)
        if name not in listed
    ]
    assert unlisted == [], "list these in app/private_surface.py (or stop using them)"


def test_the_private_names_of_each_library_are_reached_only_from_the_module_listed_as_using_them():
    """The walls: the SDK's internals only in app.kernel, uvicorn's only in app.http_protocol, the exporter's only in
    app.telemetry.sampling, each OpenTelemetry internal only where listed."""
    users: dict[str, set[str]] = {}
    for entry in ENTRIES:
        parts = [*entry.module.split("."), *entry.name.split(".")]
        parts += [part for path in entry.instance_attributes for part in path.split(".")]
        for part in filter(_is_private, parts):
            users.setdefault(part, set()).add(entry.used_by)
    trees = _app_sources()
    own = _own_names(trees)
    strays = []
    for path, tree in trees.items():
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        if module == "app.private_surface":
            continue  # the list itself, which names them as strings
        strays += [
            f"{module}:{node.lineno}: {name} (listed for {', '.join(sorted(users[name]))})"
            for node in ast.walk(tree)
            for name in _reached(node, own)
            if name in users and module not in users[name]
        ]
    assert strays == []
