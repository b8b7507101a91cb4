"""The deployable package: a deterministic zip of the host and the chosen server for App Service zip deploy.

What goes in is an allow-list, so nothing from a developer's checkout leaks
into production by accident:

- ``app/**/*.py`` -- the host (and the bundled demo server), laid out as
  ``app/...`` at the zip root so the startup command ``python -m app`` finds
  it in the site root;
- with a team's server (config ``serverSource``), that folder's ``**/*.py``,
  laid out at the zip root as they are in the folder, so its packages import
  from the site root (the startup command's working directory, which
  ``python -m`` puts on ``sys.path``) as they do from the folder; a top-level
  ``app`` in it would shadow the host and is refused;
- ``mcp-server.txt`` at the zip root when the server is not the bundled demo:
  the ``MODULE:ATTR`` the host serves (`app.settings.server_spec` reads it).
  In the package, not an app setting, so the choice travels with the code it
  names: an app setting would change on production and staging in the same
  ``pulumi up`` while production's code changes only by a swap, and
  production would try the new server on the old code until then;
- ``mcp-build.txt`` at the zip root: the package's build id, the sha256 of
  the package as it would be without this file, which the host reports on
  ``/health`` (`app.settings.package_build`), so the delivery can ask
  production which build it serves (components/delivery.py: a retried swap
  never swaps back);
- ``requirements.txt`` at the zip root: Oryx (App Service's build, on with
  ``SCM_DO_BUILD_DURING_DEPLOYMENT``) detects a Python app and installs its
  dependencies only from a requirements file at the root of what was
  deployed. It is ``app/requirements.txt`` (hashed pins: Oryx's pip installs
  in hash-checking mode), merged with the team's dependencies when there is
  a team server (components/requirements.py).

Never included: ``__pycache__`` and other caches, hidden files and folders,
virtualenvs (any folder holding ``pyvenv.cfg``), tests (``tests/``,
``test_*.py``, ``*_test.py``, ``conftest.py``).

The same content always gives byte-identical bytes, so the zip's sha256 is a
content hash and serves as the deploy trigger: entries are sorted, every
timestamp is the zip epoch (1980-01-01), every mode is 0644, entries are
stored uncompressed, and archive names are relative to their folder, so
where the team's folder sits on a machine does not matter. (Deflate output
depends on the zlib build -- CPython may link zlib or zlib-ng -- so compressed
bytes could differ between two machines deploying the same commit, and the
hash with them, which would redeploy for nothing. The app is a few hundred
KiB; upload size does not matter.)
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from app.contract import BUILD_FILE_NAME, DEFAULT_SERVER, SERVER_FILE_NAME
from components.requirements import (
    DEPENDENCY_FILES,
    RequirementsError,
    dependency_file,
    merged_requirements,
    read_requirements,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent

APP_DIR = "app"
REQUIREMENTS_FILE = "requirements.txt"
BUNDLED_SERVER = DEFAULT_SERVER
"""The host's default server."""
SERVER_FILE = SERVER_FILE_NAME
"""The served server's MODULE:ATTR, read by the host (app.settings.SERVER_FILE)."""
BUILD_FILE = BUILD_FILE_NAME
"""The package's build id, reported by the host's /health."""

# Where `pulumi up` writes the package, relative to the working directory of
# the program and of the deploy commands (this project's root, or the folder
# of another program using components.fleet). A fixed relative path keeps the
# deploy commands' inputs identical across machines and checkouts, so only a
# content change (the hash) redeploys. Git ignores it here.
PACKAGE_PATH = PurePosixPath("dist/app.zip")

APP_FILE_PATTERNS = ("*.py",)
EXCLUDED_FILE_PATTERNS = ("test_*.py", "*_test.py", "conftest.py")
EXCLUDED_DIR_NAMES = frozenset({"__pycache__", "tests", "node_modules"})

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o100644  # regular file, rw-r--r--


@dataclass(frozen=True)
class AppPackage:
    """A built package: where it is, its sha256 and what it holds."""

    path: Path
    """Absolute path of the zip file."""
    relative_path: str
    """The zip's path relative to the folder the deploy commands run in, as they use it."""
    sha256: str
    """Hex sha256 of the zip bytes; equal content gives an equal hash."""
    entries: tuple[str, ...]
    """Archive names, sorted."""
    build_id: str
    """Hex sha256 of the package without :data:`BUILD_FILE`; the file holds it, and the host reports it."""


class PackageError(ValueError):
    """A team's server folder that cannot be packaged with the host."""


def collect_files(project_root: Path = PROJECT_ROOT) -> dict[str, Path]:
    """Map each archive name of the host to its source file, by the allow-list above."""
    app_dir = project_root / APP_DIR
    requirements = app_dir / REQUIREMENTS_FILE
    if not (app_dir / "__main__.py").is_file():
        raise FileNotFoundError(f"{app_dir / '__main__.py'} not found: the package needs the app's entry point")
    if not requirements.is_file():
        raise FileNotFoundError(f"{requirements} not found: App Service's build installs from it")
    return dict(sorted({REQUIREMENTS_FILE: requirements, **_python_files(app_dir, project_root)}.items()))


def source_files(folder: Path) -> dict[str, Path]:
    """Map each archive name of a team's server folder to its source file, by the allow-list above."""
    files = _python_files(folder, folder)
    shadowing = sorted(name for name in files if PurePosixPath(name).parts[0] in (APP_DIR, f"{APP_DIR}.py"))
    if shadowing:
        raise PackageError(
            f"{folder} holds {shadowing[0]}: a top-level {APP_DIR!r} would shadow the host's package of that "
            "name; rename the team's package"
        )
    return dict(sorted(files.items()))


def _python_files(folder: Path, names_relative_to: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for here_name, dir_names, file_names in os.walk(folder):
        here = Path(here_name)
        # Prune in place so os.walk never descends into excluded folders.
        dir_names[:] = sorted(
            d
            for d in dir_names
            if not d.startswith(".") and d not in EXCLUDED_DIR_NAMES and not (here / d / "pyvenv.cfg").exists()
        )
        for file_name in file_names:
            if file_name.startswith(".") or not _allowed(file_name):
                continue
            source = here / file_name
            files[source.relative_to(names_relative_to).as_posix()] = source
    return files


def _allowed(file_name: str) -> bool:
    return any(fnmatch.fnmatchcase(file_name, p) for p in APP_FILE_PATTERNS) and not any(
        fnmatch.fnmatchcase(file_name, p) for p in EXCLUDED_FILE_PATTERNS
    )


def package_contents(
    project_root: Path = PROJECT_ROOT, source: Path | None = None, server: str = BUNDLED_SERVER
) -> dict[str, bytes]:
    """Archive name -> bytes: the host, plus the team's server folder ``source`` when given, serving ``server``.

    Raises :class:`PackageError` when ``source`` cannot go in: no dependency
    file, a name the host uses, or requirements that contradict a host pin.
    """
    host = collect_files(project_root)
    contents = {name: path.read_bytes() for name, path in host.items()}
    if server != BUNDLED_SERVER:
        contents[SERVER_FILE] = f"{server}\n".encode()
    if source is None:
        return dict(sorted(contents.items()))
    team_file = dependency_file(source)
    if team_file is None:
        raise PackageError(f"{source} has no {' or '.join(DEPENDENCY_FILES)} listing the server's dependencies")
    try:
        contents[REQUIREMENTS_FILE] = merged_requirements(
            host[REQUIREMENTS_FILE], read_requirements(team_file), team_file
        )
    except RequirementsError as error:
        raise PackageError(str(error)) from None
    contents.update((name, path.read_bytes()) for name, path in source_files(source).items())
    return dict(sorted(contents.items()))


def archive_bytes(contents: Mapping[str, bytes]) -> bytes:
    """The zip of ``contents`` (archive name -> bytes), byte-identical for identical content."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in sorted(contents):
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            info.create_system = 3  # Unix, so external_attr is read as a mode
            info.external_attr = FILE_MODE << 16
            info.compress_type = zipfile.ZIP_STORED
            archive.writestr(info, contents[name])
    return buffer.getvalue()


def build_package(
    project_root: Path = PROJECT_ROOT,
    output: PurePosixPath = PACKAGE_PATH,
    source: Path | None = None,
    server: str = BUNDLED_SERVER,
    working_dir: Path | None = None,
) -> AppPackage:
    """Build the package of ``project_root``'s host (plus the server folder ``source``, serving ``server``) and
    write it to ``output``.

    ``output`` is relative to ``working_dir``, the folder the deploy commands
    run in (that of the Pulumi program); None: the project root. The file is
    replaced atomically, so a concurrent reader never sees half a zip.
    """
    contents = package_contents(project_root, source, server)
    # The id cannot be the zip's own hash, which would have to include itself.
    build_id = hashlib.sha256(archive_bytes(contents)).hexdigest()
    contents = dict(sorted({**contents, BUILD_FILE: f"{build_id}\n".encode()}.items()))
    data = archive_bytes(contents)
    target = (working_dir or project_root) / output
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    staging.write_bytes(data)
    os.replace(staging, target)
    return AppPackage(
        path=target,
        relative_path=output.as_posix(),
        sha256=hashlib.sha256(data).hexdigest(),
        entries=tuple(contents),
        build_id=build_id,
    )
