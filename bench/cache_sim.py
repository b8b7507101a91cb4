"""Instructions and cache misses per MCP message, telemetry on against off, under a cache simulation.

Under load on this machine, telemetry's CPU cost is mostly instruction-cache
misses, not instructions (``app.telemetry.McpInstrumentation``), and CPU
time on a shared microVM moves by several per cent from run to run. This
counts what a message costs deterministically: the app's message handler
runs in process (no HTTP: the dispatcher and, when on, the telemetry
middleware), ``--messages`` tools/call whoami after a warm-up, under
valgrind's callgrind with its cache simulation sized as this machine's AMD
EPYC (32 KiB L1i and L1d, 1 MiB L2). Only the timed messages on the main
thread are counted. Telemetry on exports to the local ingestion stand-in.

    uv run python bench/cache_sim.py              # 5000 messages per variant, ~2 minutes
    uv run python bench/cache_sim.py --messages 2000

Prints, per variant, instructions, L1i misses and L1d misses per message, and
the on/off ratio and difference of each. Needs valgrind (Debian: ``apt-get
install valgrind``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Cache geometry of the benchmark machine (lscpu): 32 KiB 8-way L1i and L1d, 1 MiB 16-way L2, 64-byte lines.
CACHES = ["--I1=32768,8,64", "--D1=32768,8,64", "--LL=1048576,16,64"]
EVENTS = {"Ir": "instructions", "I1mr": "L1i misses", "D1mr": "L1d read misses", "D1mw": "L1d write misses"}
WARMUP = 2000


def serve_messages(messages: int, telemetry_on: bool, signals: Path) -> None:
    """In the process valgrind runs: warm up, say ready, wait for the go, serve ``messages``, say done."""
    sys.path.insert(0, str(ROOT))
    from app import main, telemetry
    from bench.ingestion import Ingestion
    from bench.run import SCENARIOS

    whoami = SCENARIOS["whoami"]  # the message and headers the HTTP benchmark sends
    body = whoami.body().encode()
    headers = [(name.lower().encode(), value.encode()) for name, value in whoami.headers(port=0).items()]

    environ = dict(os.environ, APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL="true")
    if telemetry_on:
        environ[telemetry.CONNECTION_STRING_ENV] = Ingestion().connection_string()
    transport = main.create_app(message_middleware=telemetry.message_middleware(environ)).mcp
    head = transport.read_head("POST", headers)

    async def serve(count: int) -> None:
        for _ in range(count):
            reply = await transport.handler(transport.exchange(head, body, None))
            if reply.status != 200:
                raise SystemExit(f"whoami answered {reply.status}: {reply.body!r}")

    loop = asyncio.new_event_loop()
    loop.run_until_complete(serve(WARMUP))
    gc.freeze()  # as app.main does once started
    (signals / "ready").write_text("")
    while not (signals / "go").exists():
        time.sleep(0.05)
    loop.run_until_complete(serve(messages))
    (signals / "done").write_text("")
    time.sleep(3600)  # until the parent has dumped the counts and ends the process


def wait_for(path: Path, process: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the simulated process stopped or stalled before {path.name}")
        time.sleep(0.2)


def simulate(messages: int, telemetry_on: bool) -> dict[str, float]:
    """Events per timed message on the main thread, from one callgrind run."""
    with tempfile.TemporaryDirectory() as scratch:
        signals, out = Path(scratch), Path(scratch) / "callgrind.out"
        command = [
            "valgrind", "--tool=callgrind", "--cache-sim=yes", *CACHES, "--separate-threads=yes",
            "--instr-atstart=no", f"--callgrind-out-file={out}",
            sys.executable, __file__, "--child", str(messages), "on" if telemetry_on else "off", scratch,
        ]  # fmt: skip
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(signals / "ready", process, 600)
            subprocess.run(["callgrind_control", "-i", "on", str(process.pid)], check=True, capture_output=True)
            (signals / "go").write_text("")
            wait_for(signals / "done", process, 3600)
            subprocess.run(["callgrind_control", "-d", str(process.pid)], check=True, capture_output=True)
        finally:
            process.kill()
            process.wait()
        # The dump is <out>.1-01 for thread 1, the event loop's.
        return {event: count / messages for event, count in read_totals(Path(f"{out}.1-01")).items()}


def read_totals(dump: Path) -> dict[str, int]:
    events: list[str] = []
    for line in dump.read_text().splitlines():
        if line.startswith("events:"):
            events = line.split()[1:]
        elif line.startswith("summary:") or line.startswith("totals:"):
            counts = dict(zip(events, map(int, line.split()[1:]), strict=False))
            return {event: counts[event] for event in EVENTS}
    raise SystemExit(f"no totals in {dump}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000, help="timed messages per variant (default 5000)")
    args = parser.parse_args(argv)
    if args.messages < 1:
        parser.error(f"--messages {args.messages}: must be at least 1")
    missing = [tool for tool in ("valgrind", "callgrind_control") if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"{' and '.join(missing)} not found: install valgrind (Debian: apt-get install valgrind)")
    off, on = simulate(args.messages, telemetry_on=False), simulate(args.messages, telemetry_on=True)
    print(f"per tools/call whoami message, {args.messages} timed, main thread (callgrind, {' '.join(CACHES)})")
    print(f"{'':>18} {'telemetry off':>14} {'telemetry on':>14} {'on/off':>8} {'on - off':>10}")
    for event, name in EVENTS.items():
        print(
            f"{name:>18} {off[event]:>14,.0f} {on[event]:>14,.0f} {on[event] / off[event]:>7.2f}x {on[event] - off[event]:>+10,.0f}"
        )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        serve_messages(int(sys.argv[2]), sys.argv[3] == "on", Path(sys.argv[4]))
    else:
        main()
