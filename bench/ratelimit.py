"""Rate limits on against off: the CPU a limited call costs, and how closely a fleet-wide limit holds.

    uv run python -m bench.ratelimit                          # 3 rounds, 10 s per measurement
    uv run python -m bench.ratelimit --duration 3 --rounds 1  # a quick check that it runs

Both parts run ``python -m app`` (one uvicorn worker, the bundled demo) against a real Redis on 127.0.0.1
(Debian's redis-server, installed with apt-get if missing), driven by wrk with bench/mcp.lua exactly as
bench/run.py drives it (same threads, connections, pinning and CPU accounting from /proc):

1. Cost: ``tools/call whoami`` against ``off`` (no MCP_RATE_LIMITS) and ``on``, where every call passes three
   limits (``*`` per caller, whoami per caller and whoami in total) set far above what a run sends, so every
   call is admitted and what is measured is admitting it: local tokens, leased from Redis in batches. Reported:
   CPU us per successful call each, and on/off (the design's budget is 1.25x).
2. Accuracy: two processes share a total limit of ``--accuracy-limit`` calls per hour on whoami
   (MCP_RATE_LIMIT_INSTANCES=2), each hammered by its own wrk at the same time until the fleet is far past the
   limit. Reported: calls admitted (successful replies over both) against the limit; the design holds it
   within [95%, 100%] (unused leases may leave up to 5% unspent, nothing is ever admitted past it).
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from bench.run import SCENARIOS, Measurement, core_plan, drive, ensure_debian_command, serving, verify

WHOAMI = SCENARIOS["whoami"]
_NEVER_REACHED = "1000000000/hour"
LIMITS_ON = {"*": {"perCaller": _NEVER_REACHED}, "whoami": {"perCaller": _NEVER_REACHED, "total": _NEVER_REACHED}}
HOUR = 3600


@contextmanager
def redis_server(binary: str) -> Iterator[str]:
    """A throwaway redis-server on a free loopback port; yields its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while not _pings(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"redis-server did not start on port {port}")
            time.sleep(0.02)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def _pings(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _redis_command(url: str, *command: str):
    import redis

    with redis.Redis.from_url(url) as client:
        return client.execute_command(*command)


def measure_cost(args: argparse.Namespace, wrk: str, redis_url: str) -> list[dict[str, Measurement]]:
    server_prefix, load_prefix, _ = core_plan(args.pin)
    limited = {"MCP_RATE_LIMITS": json.dumps(LIMITS_ON), "MCP_REDIS_URL": redis_url}
    rounds = []
    with ExitStack() as stack:
        servers = {
            "off": stack.enter_context(serving("ours", server_prefix, {})),
            "on": stack.enter_context(serving("ours", server_prefix, {}, env=limited)),
        }
        for server in servers.values():
            verify(server, WHOAMI)
            if args.warmup:
                drive(wrk, load_prefix, server, WHOAMI, seconds=args.warmup, args=args)
        for number in range(args.rounds):
            order = ["off", "on"] if number % 2 == 0 else ["on", "off"]
            measured = {
                role: drive(wrk, load_prefix, servers[role], WHOAMI, seconds=args.duration, args=args, role=role)
                for role in order
            }
            for role in ("off", "on"):
                if measured[role].bad or measured[role].socket_errors:
                    raise SystemExit(f"limits {role}: {measured[role].bad} refused or failed replies; expected none")
            rounds.append(measured)
            print(
                f"  cost round {number + 1}: off {measured['off'].cpu_us_per_ok:.1f} us/call, "
                f"on {measured['on'].cpu_us_per_ok:.1f} us/call, "
                f"on/off {measured['on'].cpu_us_per_ok / measured['off'].cpu_us_per_ok:.2f}x",
                flush=True,
            )
    return rounds


def measure_accuracy(args: argparse.Namespace, wrk: str, redis_url: str) -> tuple[int, int]:
    """(calls admitted, calls sent) by two processes sharing one total limit."""
    _redis_command(redis_url, "FLUSHALL")
    left = HOUR - time.time() % HOUR
    if left < args.duration + 15:  # the run must stay inside one window of the limit
        time.sleep(left + 0.1)
    env = {
        "MCP_RATE_LIMITS": json.dumps({"whoami": {"total": f"{args.accuracy_limit}/hour"}}),
        "MCP_REDIS_URL": redis_url,
        "MCP_RATE_LIMIT_INSTANCES": "2",
    }
    with ExitStack() as stack:
        servers = [stack.enter_context(serving("ours", [], {}, env=env)) for _ in range(2)]
        results: list[Measurement] = []
        failures: list[BaseException] = []

        def hammer(server) -> None:
            try:
                results.append(drive(wrk, [], server, WHOAMI, seconds=args.duration, args=args))
            except BaseException as error:  # noqa: BLE001 - reported below, from the main thread
                failures.append(error)

        threads = [threading.Thread(target=hammer, args=(server,)) for server in servers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if failures:
            raise failures[0]
    admitted = sum(m.ok for m in results)
    sent = sum(m.ok + m.bad for m in results)
    return admitted, sent


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ratelimit", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement (default 10)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of untimed load per server (default 3)")
    parser.add_argument("--rounds", type=int, default=3, help="cost rounds, off and on in turn (default 3)")
    parser.add_argument("--connections", type=int, default=32, help="concurrent connections (default 32)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--accuracy-limit", type=int, default=10000, help="the shared total limit (default 10000)")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin server and wrk to cores")
    args = parser.parse_args(argv)
    for option, low in (("duration", 1), ("warmup", 0), ("rounds", 1), ("connections", 1), ("threads", 1)):
        if getattr(args, option) < low:
            parser.error(f"--{option} must be >= {low}, got {getattr(args, option)}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    wrk = ensure_debian_command("wrk")
    with redis_server(ensure_debian_command("redis-server")) as redis_url:
        rounds = measure_cost(args, wrk, redis_url)
        leases = _redis_command(redis_url, "INFO", "commandstats")
        admitted, sent = measure_accuracy(args, wrk, redis_url)
    ratios = sorted(r["on"].cpu_us_per_ok / r["off"].cpu_us_per_ok for r in rounds)
    scripts = sum(v.get("calls", 0) for k, v in leases.items() if k in ("cmdstat_evalsha", "cmdstat_eval"))
    calls_on = sum(r["on"].ok for r in rounds)
    print(f"\nCPU/call on/off (min / median / max over {len(rounds)} rounds): "
          f"{ratios[0]:.2f}x / {ratios[len(ratios) // 2]:.2f}x / {ratios[-1]:.2f}x; "
          f"{scripts} lease script(s) for {calls_on} limited calls")  # fmt: skip
    share = admitted / args.accuracy_limit
    print(f"accuracy: {admitted} of {args.accuracy_limit} admitted across 2 processes ({share:.1%}) from {sent} sent")
    if sent < 1.2 * args.accuracy_limit:
        print("  (the load did not reach well past the limit: raise --duration or lower --accuracy-limit)")
    if admitted > args.accuracy_limit:
        raise SystemExit("the fleet admitted more calls than its limit")


if __name__ == "__main__":
    main()
