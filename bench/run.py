"""Benchmark our MCP transport against the official SDK's and a bare ASGI ceiling.

    uv run python -m bench                     # 3 rounds x 4 scenarios x their servers, 10 s each, 32 connections
    uv run python -m bench --duration 5 --rounds 1
    uv run python -m bench --scenarios whoami,tools-list --servers ours,sdk
    uv run python -m bench --help

Each scenario is one request, sent by every role that can serve it; each
role is a server process (see ``PROCESSES``) on one uvicorn worker on
127.0.0.1 and a kernel-chosen free port:

    whoami, tools-list   the bundled demo (bench/tools.py)
      ours  python -m app                     our lean stateless transport, as deployed
      sdk   uvicorn bench.sdk_server:app      the SDK's stateless JSON-response transport
      bare  uvicorn bench.bare_server:app     a bare ASGI JSON-RPC responder (the ceiling of an ASGI app)
    byo-structured, byo-progress   a team's own server (bench/byo_server.py)
      ours  python -m app --server bench.byo_server:server
      sdk   the SDK's stateless transport: JSON responses for the structured-output
            tool, SSE allowed for the tool that streams three progress notifications

All are started, checked and warmed up, then driven one at a time by
wrk (Debian's package, installed with apt-get if missing), in an order that
rotates every round, with bench/mcp.lua, which POSTs one valid MCP
2026-07-28 request and counts replies that are not a successful JSON-RPC
result. Before any timing, the exact request wrk will send is sent once and
its reply must be a 200 JSON-RPC result without ``isError``; otherwise the
run stops. Throughput is successful replies per second, so a server that
fails fast cannot win. Beside req/s and wrk's p50/p99 latency, the server
process's CPU time per successful request is reported (from /proc): other
load on the machine moves it far less than req/s.

On a machine with two or more cores the server is pinned to the last core
and wrk to the others (``taskset``), so the two never compete for one core
and the scheduler does not migrate the server mid-run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.ingestion import Ingestion

PROJECT_ROOT = Path(__file__).resolve().parents[1]
LUA_SCRIPT = PROJECT_ROOT / "bench" / "mcp.lua"
PROTOCOL_VERSION = "2026-07-28"

# Every server gets one uvicorn worker on 127.0.0.1 and a kernel-chosen port.
# Ours runs exactly as deployed (`python -m app`, whose uvicorn settings the
# other two mirror: no access log, no Server header, proxy headers trusted).
# Its HTTP protocol (app.http_protocol) is its own: it pays for a request
# deadline and a head-size limit the other two lack, and it serves POST /mcp
# without the ASGI cycle the other two go through.
_UVICORN = [
    "-m", "uvicorn",
    "--host", "127.0.0.1", "--port", "0", "--workers", "1",
    "--no-access-log", "--no-server-header", "--proxy-headers", "--forwarded-allow-ips", "*",
    "--timeout-graceful-shutdown", "3", "--log-level", "info",
]  # fmt: skip
_OURS = ["-m", "app", "--host", "127.0.0.1", "--port", "0", "--workers", "1", "--graceful-timeout", "3"]
PROCESSES = {
    "ours": _OURS,
    "sdk": [*_UVICORN, "bench.sdk_server:app"],
    "bare": [*_UVICORN, "bench.bare_server:app"],
    "ours-byo": [*_OURS, "--server", "bench.byo_server:server"],
    "sdk-byo-json": [*_UVICORN, "bench.byo_server:sdk_json_app"],
    "sdk-byo-sse": [*_UVICORN, "bench.byo_server:sdk_sse_app"],
    "ours-traced": _OURS,
    "sdk-traced": [*_UVICORN, "bench.sdk_telemetry_server:app"],
}
"""Every server process the scenarios use; a scenario names which of them plays each role."""
TRACED = frozenset({"ours-traced", "sdk-traced"})
"""Processes that export telemetry, as deployed, to the ingestion stand-in (bench/ingestion.py)."""
SERVERS = ("ours", "sdk", "bare", "untraced")
"""The roles: ours, the SDK's transport, the bare ceiling, ours with telemetry off (a scenario may lack some)."""
_DEMO = {"ours": "ours", "sdk": "sdk", "bare": "bare"}
_LISTENING = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")
STARTUP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Scenario:
    name: str
    method: str
    params: dict
    roles: dict[str, str] = field(default_factory=lambda: dict(_DEMO))
    """Role (ours, sdk, bare) -> the process in PROCESSES that plays it."""
    meta: dict = field(default_factory=dict)

    def body(self) -> str:
        meta = {
            "io.modelcontextprotocol/protocolVersion": PROTOCOL_VERSION,
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "mcpscale-bench", "version": "1.0"},
            **self.meta,
        }
        request = {"jsonrpc": "2.0", "id": 1, "method": self.method, "params": {**self.params, "_meta": meta}}
        return json.dumps(request, separators=(",", ":"))

    def headers(self, port: int) -> dict[str, str]:
        headers = {
            "Host": f"127.0.0.1:{port}",
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": PROTOCOL_VERSION,
            "Mcp-Method": self.method,
        }
        if "name" in self.params:
            headers["Mcp-Name"] = self.params["name"]
        return headers


SCENARIOS = {
    "whoami": Scenario("tools/call whoami", "tools/call", {"name": "whoami", "arguments": {}}),
    "tools-list": Scenario("tools/list", "tools/list", {}),
    # A team's server (--server): a structured-output tool against the SDK's JSON mode, and a tool streaming
    # three progress notifications (SSE on both) against the SDK with SSE allowed.
    "byo-structured": Scenario(
        "byo quote",
        "tools/call",
        {"name": "quote", "arguments": {"symbol": "ACME"}},
        {"ours": "ours-byo", "sdk": "sdk-byo-json"},
    ),
    # Production: telemetry on, as every deployed instance runs, against the SDK with its own OpenTelemetry
    # middleware and the same distro; "untraced" is ours with telemetry off, for what telemetry costs.
    "prod-whoami": Scenario(
        "prod whoami",
        "tools/call",
        {"name": "whoami", "arguments": {}},
        {"ours": "ours-traced", "sdk": "sdk-traced", "untraced": "ours"},
    ),
    "byo-progress": Scenario(
        "byo 3x progress",
        "tools/call",
        {"name": "countdown", "arguments": {"steps": 3}},
        {"ours": "ours-byo", "sdk": "sdk-byo-sse"},
        {"progressToken": "bench"},
    ),
}


@dataclass
class Measurement:
    server: str
    scenario: str
    ok_per_s: float
    p50_ms: float
    p99_ms: float
    bad: int
    socket_errors: int
    cpu_us_per_ok: float
    ok: int = 0


# --------------------------------------------------------------------------- tools


def ensure_debian_command(command: str, package: str | None = None) -> str:
    """Path of ``command``, installing Debian's ``package`` (default: the command's name) if it is missing."""
    package = package or command
    if found := shutil.which(command):
        return found
    print(f"{command} not found; installing it with apt-get ...", flush=True)
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", package], check=True, env=env)
    if found := shutil.which(command):
        return found
    raise SystemExit(f"{command} is still not on PATH after apt-get install {package}")


def core_plan(pin: bool) -> tuple[list[str], list[str], str]:
    """taskset prefixes for (server, load generator) and a sentence saying what was done."""
    cores = sorted(os.sched_getaffinity(0))
    if not pin or len(cores) < 2 or not shutil.which("taskset"):
        return [], [], f"not pinned ({len(cores)} usable cores)"
    server_core, load_cores = cores[-1], cores[:-1]
    load_list = ",".join(map(str, load_cores))
    return (
        ["taskset", "-c", str(server_core)],
        ["taskset", "-c", load_list],
        f"server pinned to core {server_core}, wrk to core(s) {load_list} (taskset)",
    )


# --------------------------------------------------------------------------- servers


@dataclass
class RunningServer:
    name: str
    port: int
    process: subprocess.Popen

    @property
    def mcp_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"


@contextmanager
def serving(
    name: str, server_prefix: list[str], telemetry_env: dict[str, str], env: dict[str, str] | None = None
) -> Iterator[RunningServer]:
    """Run one server under uvicorn until the block ends, then stop it (SIGTERM, then SIGKILL); ``env`` is added
    to its environment (bench/ratelimit.py configures limits with it)."""
    command = [*server_prefix, sys.executable, *PROCESSES[name]]
    child_env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(PROJECT_ROOT)}
    child_env.pop("APPLICATIONINSIGHTS_CONNECTION_STRING", None)
    if name in TRACED:
        child_env |= telemetry_env
    child_env |= env or {}
    process = subprocess.Popen(
        command, cwd=PROJECT_ROOT, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    port_box: list[int] = []
    port_seen = threading.Event()

    def drain() -> None:
        for line in process.stdout:
            lines.append(line)
            if not port_seen.is_set() and (match := _LISTENING.search(line)):
                port_box.append(int(match.group(1)))
                port_seen.set()
        port_seen.set()

    threading.Thread(target=drain, daemon=True).start()
    try:
        if not port_seen.wait(STARTUP_TIMEOUT_S) or not port_box:
            raise SystemExit(f"{name} server did not start (exit {process.poll()}):\n{''.join(lines)}")
        yield RunningServer(name, port_box[0], process)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def verify(server: RunningServer, scenario: Scenario) -> str:
    """Send the exact request wrk will send; fail the run unless it is a successful result."""
    body = scenario.body().encode()
    request = urllib.request.Request(server.mcp_url, data=body, method="POST", headers=scenario.headers(server.port))
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    problem = None
    try:
        # An SSE reply (progress streamed first) ends with the result as its last event.
        events = [line[5:].strip() for line in raw.decode().splitlines() if line.startswith("data:")]
        reply = json.loads(events[-1] if events else raw)
    except ValueError:
        reply, problem = None, "the reply is not JSON"
    if problem is None:
        if status != 200:
            problem = f"HTTP {status}"
        elif not isinstance(reply, dict) or "result" not in reply:
            problem = "the reply has no JSON-RPC result"
        elif reply["result"].get("isError"):
            problem = "the tool reported isError"
        elif scenario.method == "tools/list" and not any(
            t.get("name") == "whoami" for t in reply["result"].get("tools", [])
        ):
            problem = "tools/list does not list whoami"
        elif scenario.method == "tools/call" and not reply["result"].get("content"):
            problem = "tools/call returned no content"
    if problem:
        raise SystemExit(
            f"{server.name} fails {scenario.name} before timing ({problem}); reply:\n{raw[:2000].decode(errors='replace')}"
        )
    return raw.decode()


def drive(
    wrk: str,
    load_prefix: list[str],
    server: RunningServer,
    scenario: Scenario,
    *,
    seconds: float,
    args: argparse.Namespace,
    role: str = "",
) -> Measurement:
    headers = [f"{key}: {value}" for key, value in scenario.headers(server.port).items()]
    command = [
        *load_prefix, wrk,
        "--threads", str(args.threads),
        "--connections", str(args.connections),
        "--duration", f"{seconds:g}s",
        "--timeout", "5s",
        "--script", str(LUA_SCRIPT),
        server.mcp_url,
        "--", scenario.body(), *headers,
    ]  # fmt: skip
    cpu_before = cpu_seconds(server.process.pid)
    completed = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)
    cpu_used = cpu_seconds(server.process.pid) - cpu_before
    found = re.search(r"^BENCH_RESULT (\{.*\})$", completed.stdout, re.MULTILINE)
    if completed.returncode != 0 or not found:
        raise SystemExit(f"wrk failed (exit {completed.returncode}):\n{completed.stdout}\n{completed.stderr}")
    result = json.loads(found.group(1))
    return Measurement(
        server=role or server.name,
        scenario=scenario.name,
        ok_per_s=result["ok"] / (result["duration_us"] / 1e6),
        p50_ms=result["p50_us"] / 1000,
        p99_ms=result["p99_us"] / 1000,
        bad=result["bad"],
        socket_errors=result["socket_errors"] + result["timeouts"],
        cpu_us_per_ok=cpu_used * 1e6 / result["ok"] if result["ok"] else float("inf"),
        ok=result["ok"],
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used (Linux /proc).

    CPU per request barely moves when other work shares the machine, where
    req/s does, so it is reported beside req/s as the steadier cost figure.
    """
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- report


def ratio(results: list[Measurement], scenario: str, under: str, *, by_cpu: bool = False) -> float | None:
    """ours relative to ``under``: req/s ours/under, or with ``by_cpu`` CPU per request under/ours (higher = ours better)."""
    rows = {m.server: m for m in results if m.scenario == scenario}
    if "ours" not in rows or under not in rows:
        return None
    ours, other = rows["ours"], rows[under]
    if by_cpu:
        return other.cpu_us_per_ok / ours.cpu_us_per_ok if ours.cpu_us_per_ok else None
    return ours.ok_per_s / other.ok_per_s if other.ok_per_s else None


_RATIOS = (
    ("req/s ours/sdk", "sdk", False, "{:.2f}x"),
    ("req/s ours/bare", "bare", False, "{:.0%}"),
    ("CPU/req sdk/ours", "sdk", True, "{:.2f}x"),
    ("CPU/req bare/ours", "bare", True, "{:.0%}"),
    # Inverted (ours/untraced): what telemetry multiplies the CPU per request by.
    ("CPU/req ours/untraced", "untraced", True, "{:.2f}x"),
)


def _shown(value: float | None, under: str) -> float | None:
    return 1 / value if value and under == "untraced" else value


def render(results: list[Measurement], scenarios: list[Scenario]) -> str:
    lines = [
        (
            f"{'scenario':<18} {'server':<8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU us/req':>10}"
            f" {'bad':>6} {'sock err':>8}"
        ),
    ]
    for scenario in scenarios:
        for m in (m for m in results if m.scenario == scenario.name):
            lines.append(
                f"{m.scenario:<18} {m.server:<8} {m.ok_per_s:>9.0f} {m.p50_ms:>8.2f} {m.p99_ms:>8.2f}"
                f" {m.cpu_us_per_ok:>10.0f} {m.bad:>6} {m.socket_errors:>8}"
            )
        parts = [
            f"{label} = {fmt.format(value)}"
            for label, under, by_cpu, fmt in _RATIOS
            if (value := _shown(ratio(results, scenario.name, under, by_cpu=by_cpu), under)) is not None
        ]
        if parts:
            lines.append(f"{'':<18} " + ", ".join(parts))
    return "\n".join(lines)


def render_spread(rounds: list[list[Measurement]], scenarios: list[Scenario]) -> str:
    lines = ["", f"spread over {len(rounds)} rounds (min / median / max):"]
    for scenario in scenarios:
        servers = [m.server for m in rounds[0] if m.scenario == scenario.name]
        for server in servers:
            rows = [m for r in rounds for m in r if m.scenario == scenario.name and m.server == server]
            lines.append(
                f"  {scenario.name:<18} {server:<8} req/s {_spread([m.ok_per_s for m in rows], '{:.0f}')}"
                f"   CPU us/req {_spread([m.cpu_us_per_ok for m in rows], '{:.0f}')}"
            )
        for label, under, by_cpu, fmt in _RATIOS:
            values = [
                v for r in rounds if (v := _shown(ratio(r, scenario.name, under, by_cpu=by_cpu), under)) is not None
            ]
            if values:
                lines.append(f"  {scenario.name:<18} {label:<18} {_spread(values, fmt)}")
    return "\n".join(lines)


def _spread(values: list[float], fmt: str) -> str:
    return " / ".join(fmt.format(v) for v in (min(values), statistics.median(values), max(values)))


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per timed scenario (default 10)")
    parser.add_argument(
        "--warmup", type=float, default=3.0, help="seconds of untimed load per scenario first (default 3)"
    )
    parser.add_argument("--connections", type=int, default=32, help="concurrent connections (default 32)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--rounds", type=int, default=3, help="timed passes over every server and scenario (default 3)")
    parser.add_argument(
        "--servers", default=",".join(SERVERS), help=f"comma-separated subset of {','.join(SERVERS)} (default all)"
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated subset of {','.join(SCENARIOS)} (default all)",
    )
    parser.add_argument(
        "--no-pin", dest="pin", action="store_false", help="do not pin server and wrk to separate cores"
    )
    args = parser.parse_args(argv)
    for option, allowed in (("servers", SERVERS), ("scenarios", SCENARIOS)):
        chosen = [item for item in getattr(args, option).split(",") if item]
        unknown = [item for item in chosen if item not in allowed]
        if unknown or not chosen:
            parser.error(f"--{option} {getattr(args, option)!r}: unknown {unknown}; allowed: {', '.join(allowed)}")
        setattr(args, option, chosen)
    for option, low in (("duration", 1), ("warmup", 0), ("connections", 1), ("threads", 1), ("rounds", 1)):
        if getattr(args, option) < low:
            parser.error(f"--{option} must be >= {low}, got {getattr(args, option)}")
    if args.threads > args.connections:
        parser.error(f"--threads ({args.threads}) must not exceed --connections ({args.connections})")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # SIGTERM (e.g. a CI timeout) unwinds through the `serving` blocks, which stop the servers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    wrk = ensure_debian_command("wrk")
    server_prefix, load_prefix, pinning = core_plan(args.pin)
    scenarios = [SCENARIOS[name] for name in args.scenarios]
    print(
        f"wrk {args.threads} threads, {args.connections} connections, {args.duration:g} s per scenario "
        f"after {args.warmup:g} s warm-up; 1 uvicorn worker per server; {pinning}; "
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}",
        flush=True,
    )
    with ExitStack() as stack:
        cast = {(s.name, role): s.roles[role] for s in scenarios for role in args.servers if role in s.roles}
        telemetry_env: dict[str, str] = {}
        if TRACED & set(cast.values()):
            ingestion = Ingestion()
            stack.callback(ingestion.close)
            telemetry_env = {
                "APPLICATIONINSIGHTS_CONNECTION_STRING": ingestion.connection_string(),
                "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",  # statsbeat would go to Microsoft's endpoint
                # The exporter keeps what it could not send under the temp folder and retries it from any process
                # with the same key: a private one keeps runs apart.
                "TMPDIR": stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-telemetry-")),
            }
        processes = {
            name: stack.enter_context(serving(name, server_prefix, telemetry_env))
            for name in dict.fromkeys(cast.values())
        }
        for scenario in scenarios:
            for role in args.servers:
                if (scenario.name, role) in cast:
                    server = processes[cast[scenario.name, role]]
                    verify(server, scenario)
                    if args.warmup:
                        drive(wrk, load_prefix, server, scenario, seconds=args.warmup, args=args)
        rounds: list[list[Measurement]] = []
        for round_number in range(1, args.rounds + 1):
            # All servers stay up (idle ones cost nothing) and take turns, in an
            # order that rotates each round, so load from other processes on the
            # machine is spread over all of them rather than hitting one.
            shift = (round_number - 1) % len(args.servers)
            order = args.servers[shift:] + args.servers[:shift]
            results: list[Measurement] = []
            for scenario in scenarios:
                for role in (r for r in order if (scenario.name, r) in cast):
                    server = processes[cast[scenario.name, role]]
                    measurement = drive(wrk, load_prefix, server, scenario, seconds=args.duration, args=args, role=role)
                    results.append(measurement)
                    print(
                        f"  round {round_number}: {role:<8} {scenario.name:<18} {measurement.ok_per_s:>8.0f} req/s",
                        flush=True,
                    )
            for server in processes.values():
                if server.process.poll() is not None:
                    raise SystemExit(f"{server.name} server died during the run (exit {server.process.returncode})")
            results.sort(key=lambda m: args.servers.index(m.server))
            rounds.append(results)
            print(f"\nround {round_number}:\n{render(results, scenarios)}\n", flush=True)
    if len(rounds) > 1:
        print(render_spread(rounds, scenarios))


if __name__ == "__main__":
    main()
