"""Cold start of ``python -m app``: process spawn to the first 200 from GET /health.

Compares, in one run on one machine, the app as it is now (the working tree)
against a baseline, both without APPLICATIONINSIGHTS_CONNECTION_STRING, runs
interleaved so machine drift hits both alike. The default baseline is the
same working tree with the telemetry wiring taken out (``app/main.py``
without ``app.telemetry``, and ``app/telemetry/`` deleted): exactly "before
telemetry", with every other change equal. ``--baseline REV`` uses ``app/``
of a git revision instead. It also measures the current app with a
connection string (pointed at a closed local port, so nothing leaves the
machine) to show what turning telemetry on costs.

    uv run python bench/cold_start.py                  # baseline = this tree without telemetry
    uv run python bench/cold_start.py --baseline HEAD~3 --runs 21

Prints median / p90 per variant and the ratio current/baseline of medians.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LISTENING = re.compile(rb"Uvicorn running on http://127\.0\.0\.1:(\d+)")
TIMEOUT_S = 60.0
# The two lines of app/main.py that wire telemetry in, and what they were before.
WIRING = {
    "from app import telemetry\n": "",
    "create_app(message_middleware=telemetry.message_middleware())": "create_app()",
}


def git(*args: str) -> bytes:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True).stdout


def export_app(revision: str | None, destination: Path) -> Path:
    """``app/`` of ``revision`` (None: the working tree) under ``destination``."""
    destination.mkdir(parents=True)
    if revision is None:
        shutil.copytree(ROOT / "app", destination / "app", ignore=shutil.ignore_patterns("__pycache__"))
    else:
        with tarfile.open(fileobj=io.BytesIO(git("archive", "--format=tar", revision, "app"))) as archive:
            archive.extractall(destination, filter="data")
    return destination


def unwire_telemetry(tree: Path) -> Path:
    """``tree``'s app as it was before telemetry: no import of it, no middleware, no module."""
    main = tree / "app" / "main.py"
    text = main.read_text()
    for wired, before in WIRING.items():
        if wired not in text:
            raise SystemExit(f"app/main.py no longer contains {wired!r}; update WIRING in {__file__}")
        text = text.replace(wired, before)
    main.write_text(text)
    shutil.rmtree(tree / "app" / "telemetry")
    return tree


def cold_start(tree: Path, env: dict[str, str]) -> float:
    """Seconds from spawning ``python -m app`` in ``tree`` to its first healthy answer."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "--host", "127.0.0.1", "--port", "0"],
        cwd=tree,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        port = None
        for line in process.stdout:
            if match := LISTENING.search(line):
                port = int(match.group(1))
                break
        if port is None:
            raise RuntimeError(f"server in {tree} exited with {process.wait()} before listening")
        while time.perf_counter() - started < TIMEOUT_S:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    if response.status == 200:
                        return time.perf_counter() - started
            except OSError:
                time.sleep(0.002)
        raise RuntimeError(f"server in {tree} not healthy after {TIMEOUT_S} s")
    finally:
        process.terminate()
        process.wait(timeout=30)


def summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return f"median {statistics.median(samples) * 1000:7.1f} ms   p90 {p90 * 1000:7.1f} ms   (n={len(samples)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--baseline", default=None, help="git revision of the baseline app/ (default: this tree without telemetry)"
    )
    parser.add_argument("--runs", type=int, default=15, help="cold starts per variant (default 15)")
    args = parser.parse_args()

    env = {key: value for key, value in os.environ.items() if key != "APPLICATIONINSIGHTS_CONNECTION_STRING"}
    env["WEB_CONCURRENCY"] = "1"
    env.pop("PORT", None)
    telemetry_env = dict(
        env,
        # A closed local port: the exporter starts and fails quietly, nothing leaves the machine.
        APPLICATIONINSIGHTS_CONNECTION_STRING="InstrumentationKey=00000000-0000-0000-0000-000000000000;"
        "IngestionEndpoint=http://127.0.0.1:9/;LiveEndpoint=http://127.0.0.1:9/",
        APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL="true",
    )

    with tempfile.TemporaryDirectory(prefix="cold-start-") as scratch:
        if args.baseline:
            baseline_name, baseline_tree = (
                f"baseline {args.baseline}",
                export_app(args.baseline, Path(scratch) / "base"),
            )
        else:
            baseline_name = "baseline: this tree without telemetry"
            baseline_tree = unwire_telemetry(export_app(None, Path(scratch) / "base"))
        trees = {
            baseline_name: (baseline_tree, env),
            "current, telemetry off": (export_app(None, Path(scratch) / "current"), env),
            "current, telemetry on": (Path(scratch) / "current", telemetry_env),
        }
        # One discarded start per variant: writes each tree's bytecode and warms
        # the OS file cache, so the measured starts are alike (as on a warm instance).
        for tree, variant_env in trees.values():
            cold_start(tree, variant_env)
        samples: dict[str, list[float]] = {name: [] for name in trees}
        for _ in range(args.runs):
            for name, (tree, variant_env) in trees.items():
                samples[name].append(cold_start(tree, variant_env))

    print(f"python -m app: spawn -> first 200 from /health ({args.runs} interleaved runs each)")
    for name, values in samples.items():
        print(f"  {name:<45} {summary(values)}")
    names = list(samples)
    off = statistics.median(samples[names[1]]) / statistics.median(samples[names[0]])
    on = statistics.median(samples[names[2]]) / statistics.median(samples[names[0]])
    print(f"  ratio current/baseline, telemetry off: {off:.3f}")
    print(f"  ratio current/baseline, telemetry on:  {on:.3f}")


if __name__ == "__main__":
    main()
