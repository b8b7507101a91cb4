"""``python -m app``: serve the MCP server with uvicorn.

CLI contract (shared with the infrastructure's startup command
``python -m app --host 0.0.0.0``):

--host                 default 127.0.0.1
--port                 default env PORT, else 8000
--workers              default env WEB_CONCURRENCY, else 1
--graceful-timeout     seconds in-flight requests get after SIGTERM (default
                       env MCP_GRACEFUL_TIMEOUT, else app.contract's
                       GRACEFUL_TIMEOUT_SECONDS, which the stack's stop time
                       limit on App Service is derived from)
--server               MODULE:ATTR of the MCPServer to serve (default env
                       MCP_SERVER, else the bundled demo app.demo.server:server)

A ``--server`` that cannot be served (see `app.loading`) stops start-up
before the port is bound, with a message naming the value and the reason.
With one worker the server is loaded here, in the process that serves it;
with several, a short-lived child process loads it first, so that the
supervisor itself never imports the SDK (see the note at ``http=`` below).

Environment: ``MCP_READ_TIMEOUT_SECONDS`` (default 15) bounds the time a
client gets to send a whole request, head and body (app.http_protocol).

Graceful shutdown is uvicorn's own: on SIGTERM it stops accepting, lets
in-flight requests finish for up to ``--graceful-timeout`` seconds, then
closes connections; with ``--workers > 1`` the supervisor forwards SIGTERM to
each worker. (tests/app/test_main_cli.py verifies this against a real process.)
"""

from __future__ import annotations

import argparse
import copy
import os
import subprocess
import sys

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from app.contract import GRACEFUL_TIMEOUT_SECONDS
from app.settings import SERVER_ENV, SettingsError, env_number, read_timeout_seconds, server_spec

PROTOCOL_MODULE = "app.http_protocol"


def _bounded_int_option(
    parser: argparse.ArgumentParser, flag: str, env: str, default: int, lo: int, hi: int, help_text: str
):
    """An integer option whose default comes from ``env``; flag and environment are held to the same range."""
    try:
        env_default = env_number(os.environ, env, default, lo, hi)
    except SettingsError as error:
        raise SystemExit(str(error)) from None
    parser.add_argument(flag, type=_positive(flag, lo, hi), default=env_default, help=help_text)


def _positive(kind: str, lo: int, hi: int):
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{kind} must be an integer, got {raw!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{kind} must be between {lo} and {hi}, got {value}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app", description="Serve the stateless MCP server.")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    _bounded_int_option(
        parser, "--port", "PORT", 8000, 0, 65535, "TCP port (default env PORT, else 8000; 0 picks a free port)"
    )
    _bounded_int_option(
        parser, "--workers", "WEB_CONCURRENCY", 1, 1, 64, "worker processes (default env WEB_CONCURRENCY, else 1)"
    )
    _bounded_int_option(
        parser,
        "--graceful-timeout",
        "MCP_GRACEFUL_TIMEOUT",
        GRACEFUL_TIMEOUT_SECONDS,
        0,
        3600,
        "seconds to let in-flight requests finish after SIGTERM "
        f"(default env MCP_GRACEFUL_TIMEOUT, else {GRACEFUL_TIMEOUT_SECONDS})",
    )
    parser.add_argument(
        "--server",
        default=None,
        metavar="MODULE:ATTR",
        help=f"the MCPServer to serve (default env {SERVER_ENV}, else the bundled demo)",
    )
    return parser


def check_server(spec: str, workers: int) -> None:
    """Stop with the loader's message unless ``spec`` names a servable `MCPServer`."""
    if workers == 1:
        from app.loading import ServerSpecError, load_server

        try:
            load_server(spec)
        except ServerSpecError as error:
            raise SystemExit(str(error)) from None
        return
    probe = "import sys; from app.loading import load_server; load_server(sys.argv[1])"
    checked = subprocess.run([sys.executable, "-c", probe, spec], capture_output=True, text=True)
    if checked.returncode != 0:
        lines = checked.stderr.strip().splitlines()
        raise SystemExit(lines[-1].partition(": ")[2] if lines else f"{SERVER_ENV}/--server={spec!r} cannot be loaded")


def _log_config() -> dict:
    """Uvicorn's logging, plus the app's own loggers (e.g. the missing-key warning) through the same handler."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["root"] = {"handlers": ["default"], "level": "INFO"}
    return config


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:  # checked here too, so that a bad value stops the supervisor, not each worker in turn
        read_timeout_seconds(os.environ)
    except SettingsError as error:
        raise SystemExit(str(error)) from None
    if args.server is not None:
        os.environ[SERVER_ENV] = args.server  # the workers build the app from the environment
    check_server(server_spec(os.environ), args.workers)
    uvicorn.run(
        "app.main:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        timeout_graceful_shutdown=args.graceful_timeout,
        # Per-request access logs cost throughput and App Insights records requests already.
        access_log=False,
        # The platform's front end terminates TLS and sets X-Forwarded-*; trust it.
        proxy_headers=True,
        forwarded_allow_ips="*",
        server_header=False,
        # uvicorn's httptools protocol plus a request deadline, a head-size limit and POST /mcp served without
        # the ASGI cycle (see app.http_protocol). Named, not imported: it imports the MCP SDK, which only the
        # workers need (a multi-worker supervisor that imported it would hold it in memory for nothing).
        http=f"{PROTOCOL_MODULE}:McpHttpProtocol",
        log_config=_log_config(),
    )


if __name__ == "__main__":
    sys.exit(main())
