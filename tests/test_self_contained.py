"""The project reads nothing outside its own tree: a fresh clone with no sibling folders runs.

Every path the code builds from its own location is followed statically:
``Path(__file__)`` (optionally ``.resolve()``/``.absolute()``) is the file,
each ``.parent`` or ``.parents[k]`` climbs, and a module-level name bound to
such a path (also when imported from another scanned module) carries its
level along. A path that climbs above the project root fails the test with
the file and line. Strings are not judged: a literal such as
``"../no-such-folder"`` is legitimately test input, never a read.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("app", "bench", "components", "examples", "loadtest", "tests")


def _python_files() -> list[Path]:
    files = [ROOT / "__main__.py"]
    for folder in SCANNED:
        files += sorted((ROOT / folder).rglob("*.py"))
    return [f for f in files if f.is_file()]


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


class _Levels:
    """How many folders below the project root a path expression points (negative: outside the tree)."""

    def __init__(self, path: Path, imported: dict[str, int]):
        self.file_level = len(path.relative_to(ROOT).parts)  # the file itself; its folder is one less
        self.names = dict(imported)

    def of(self, node: ast.AST) -> int | None:
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id == "Path" and len(node.args) == 1:
                arg = node.args[0]
                return self.file_level if isinstance(arg, ast.Name) and arg.id == "__file__" else None
            if isinstance(func, ast.Attribute) and func.attr in ("resolve", "absolute"):
                return self.of(func.value)
            return None
        if isinstance(node, ast.Attribute) and node.attr == "parent":
            level = self.of(node.value)
            return None if level is None else level - 1
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "parents":
            level = self.of(node.value.value)
            index = node.slice
            if level is None or not (isinstance(index, ast.Constant) and isinstance(index.value, int)):
                return None
            return level - 1 - index.value
        if isinstance(node, ast.Name):
            return self.names.get(node.id)
        return None


def _module_levels(files: list[Path]) -> dict[str, dict[str, int]]:
    """Module-level names bound to a path of known level, per module (imports resolved in file order)."""
    exported: dict[str, dict[str, int]] = {}
    for _ in range(2):  # a second pass sees names imported from modules scanned later
        for path in files:
            tree = ast.parse(path.read_text(), filename=str(path))
            levels = _Levels(path, _imports(tree, exported))
            for statement in tree.body:
                if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
                    target = statement.targets[0]
                    level = levels.of(statement.value)
                    if isinstance(target, ast.Name) and level is not None:
                        levels.names[target.id] = level
            exported[_module_name(path)] = levels.names
    return exported


def _imports(tree: ast.Module, exported: dict[str, dict[str, int]]) -> dict[str, int]:
    found = {}
    for statement in tree.body:
        if isinstance(statement, ast.ImportFrom) and statement.module in exported:
            for alias in statement.names:
                if alias.name in exported[statement.module]:
                    found[alias.asname or alias.name] = exported[statement.module][alias.name]
    return found


def escapes(files: list[Path]) -> list[str]:
    """Every expression in ``files`` that builds a path above the project root, as ``file:line: code``."""
    exported = _module_levels(files)
    found: dict[tuple[Path, int], str] = {}  # one report per line: the outermost climbing expression
    for path in files:
        source = path.read_text()
        tree = ast.parse(source, filename=str(path))
        levels = _Levels(path, _imports(tree, exported))
        levels.names.update(exported[_module_name(path)])
        for node in ast.walk(tree):
            level = None if isinstance(node, ast.Name) else levels.of(node)  # a name is reported where bound
            if level is not None and level < 0:
                code = ast.get_source_segment(source, node)
                found.setdefault((path, node.lineno), f"{path.relative_to(ROOT)}:{node.lineno}: {code}")
    return [found[key] for key in sorted(found)]


def test_no_file_builds_a_path_outside_the_project():
    files = _python_files()
    assert len(files) > 50  # the scan sees the project, not an empty folder
    assert escapes(files) == []


def test_the_scan_catches_each_way_of_climbing_out(tmp_path, monkeypatch):
    """The checker itself: each form that left the tree before the schemas were vendored is reported."""
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    (tmp_path / "tests" / "app").mkdir(parents=True)
    (tmp_path / "tests" / "infra").mkdir()
    (tmp_path / "tests" / "app" / "serving.py").write_text(
        "from pathlib import Path\nPROJECT_ROOT = Path(__file__).resolve().parents[2]\n"
    )
    (tmp_path / "tests" / "app" / "conftest.py").write_text(
        "from tests.app.serving import PROJECT_ROOT\nSCHEMA = PROJECT_ROOT.parent / 'shared' / 'schema.json'\n"
    )
    (tmp_path / "tests" / "infra" / "test_x.py").write_text(
        "from pathlib import Path\n"
        "INSIDE = Path(__file__).resolve().parents[2] / 'tests'\n"
        "OUT = Path(__file__).resolve().parents[3] / 'shared'\n"
        "ALSO_OUT = Path(__file__).parent.parent.parent.parent\n"
    )
    files = sorted(tmp_path.rglob("*.py"))
    assert escapes(files) == [
        "tests/app/conftest.py:2: PROJECT_ROOT.parent",
        "tests/infra/test_x.py:3: Path(__file__).resolve().parents[3]",
        "tests/infra/test_x.py:4: Path(__file__).parent.parent.parent.parent",
    ]
