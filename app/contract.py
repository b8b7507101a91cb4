"""The names the host (``app``) and the infrastructure (``components``) share, the key ring format, and the reader
of the JSON settings.

The infrastructure sets app settings the host reads, writes a file into the
package the host opens, checks key rings the host will parse, and queries
the telemetry the host emits; each of those names is written here once and
imported by both sides, so neither can rename one alone. Standard library
only: ``components`` imports this module into every ``pulumi up``, and the
host imports it at start-up.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

# --- app settings the infrastructure sets and the host reads ------------------
HANDLE_KEYS_ENV = "MCP_HANDLE_KEYS"
REQUEST_STATE_KEYS_ENV = "MCP_REQUEST_STATE_KEYS"
TOOL_ROLES_ENV = "MCP_TOOL_ROLES"
RATE_LIMITS_ENV = "MCP_RATE_LIMITS"
REDIS_URL_ENV = "MCP_REDIS_URL"
RATE_LIMIT_INSTANCES_ENV = "MCP_RATE_LIMIT_INSTANCES"
RATE_LIMITS_FAIL_CLOSED_ENV = "MCP_RATE_LIMITS_FAIL_CLOSED"
SLOT_NAME_ENV = "MCP_SLOT_NAME"
REGION_ENV = "MCP_REGION"  # the Azure region a stamp runs in (components/stamp.py); telemetry's cloud.region
# On every span, metric point and audit record, so in each row's customDimensions (app/telemetry/).
ATTR_REGION = "cloud.region"
ALLOWED_ORIGINS_ENV = "MCP_ALLOWED_ORIGINS"
APP_INSIGHTS_CONNECTION_STRING_ENV = "APPLICATIONINSIGHTS_CONNECTION_STRING"
# Read by the Azure Monitor exporter inside the host, not by the host's own code.
APP_INSIGHTS_AUTHENTICATION_ENV = "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"

# --- the host's lifecycle ---------------------------------------------------------
GRACEFUL_TIMEOUT_SECONDS = 20
"""Seconds in-flight requests get after SIGTERM (``--graceful-timeout``'s default); the stack gives the platform's
stop a margin above it (components/site_config.py, ``WEBSITES_CONTAINER_STOP_TIME_LIMIT``)."""

# --- the served server ----------------------------------------------------------
DEFAULT_SERVER = "app.demo.server:server"
"""``MODULE:ATTR`` of the bundled demo: the host's default and the config key ``server``'s."""
SERVER_FILE_NAME = "mcp-server.txt"
"""Beside ``app/`` in a package: the ``MODULE:ATTR`` the host serves, when it is not the default."""
BUILD_FILE_NAME = "mcp-build.txt"
"""Beside ``app/`` in a package: its build id, which ``/health`` reports so a swap can tell which build a slot serves."""

# --- telemetry the host emits and the workbook queries ---------------------------
ATTR_METHOD = "mcp.method.name"
ATTR_TOOL = "gen_ai.tool.name"
ATTR_PROTOCOL_VERSION = "mcp.protocol.version"
ATTR_REQUEST_ID = "jsonrpc.request.id"
ATTR_ERROR_TYPE = "error.type"  # on the metric
DIM_ERROR_TYPE = "mcp.error.type"  # on requests rows (the exporter drops error.type there)
DIM_ERROR_CODE = "jsonrpc.error.code"  # on requests rows (the exporter drops rpc.*)
SERVICE_NAME_PREFIX = "mcp-server-"  # + the slot name: cloud_RoleName
METRIC_OPERATION_DURATION = "mcp.server.operation.duration"
AUDIT_EVENT = "mcp.tool_call"  # customEvents name
DIM_OUTCOME = "mcp.outcome"  # on the audit record
OUTCOME_OK = "ok"
MEASURE_DURATION_MS = "duration_ms"  # the audit record's customMeasurements
METRIC_RATE_LIMIT_REFUSALS = "mcp.server.rate_limit.refusals"  # counter: tools/call refused by a rate limit
ATTR_RATE_LIMIT_SCOPE = "mcp.rate_limit.scope"  # perCaller, total, or unavailable (fail closed)
ATTR_RATE_LIMIT_CALLER = "mcp.rate_limit.caller"  # the Easy Auth caller id, or anonymous

# --- key rings ---------------------------------------------------------------------
KEY_RING_FORMAT = "kid:secret[,kid:secret...]"
KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class KeyRingError(ValueError):
    """A key ring (``MCP_HANDLE_KEYS``, ``MCP_REQUEST_STATE_KEYS`` or their config keys) is not a valid key ring."""


def parse_key_ring(spec: str, name: str, min_secret: int) -> dict[str, str]:
    """Key id -> secret of ``spec`` (``kid:secret[,kid:secret...]``) read from ``name``, the first key first.

    Entries are separated by commas and stripped; every entry needs a key id
    (1-32 of ``A-Z a-z 0-9 _ -``), unique in the ring, and a secret of at
    least ``min_secret`` characters. An empty entry (``k1:...,``) is refused
    rather than skipped: it is more often a key lost in an edit than a style.
    Errors name ``name`` and the entry, never a secret.
    """
    keys: dict[str, str] = {}
    entries = [entry.strip() for entry in spec.split(",")]
    if entries == [""]:
        raise KeyRingError(f"{name} is empty; expected '{KEY_RING_FORMAT}'")
    for position, entry in enumerate(entries, start=1):
        kid, sep, secret = entry.partition(":")
        kid = kid.strip()
        if not entry:
            raise KeyRingError(f"{name} entry {position} is empty; expected '{KEY_RING_FORMAT}' without a stray comma")
        if not sep:
            raise KeyRingError(f"{name} entry {position} has no ':'; expected 'kid:secret'")
        if not KEY_ID_PATTERN.fullmatch(kid):
            raise KeyRingError(f"{name} entry {position}: key id {kid!r} must be 1-32 characters of A-Z a-z 0-9 _ -")
        if len(secret) < min_secret:
            raise KeyRingError(
                f"{name} entry {position} (key id {kid!r}): secret is {len(secret)} characters, "
                f"at least {min_secret} are required"
            )
        if kid in keys:
            raise KeyRingError(f"{name} entry {position}: key id {kid!r} appears more than once")
        keys[kid] = secret
    return keys


# --- JSON settings ---------------------------------------------------------------
def json_object(
    value: str | Mapping[str, Any], source: str, expected: str, error: type[ValueError]
) -> Mapping[str, Any]:
    """``value`` decoded as a JSON object (one already decoded passes as it is); else ``error`` naming ``source`` and
    what was ``expected``. The one reader of the settings that hold a JSON object (``MCP_TOOL_ROLES``,
    ``MCP_RATE_LIMITS``, and the config keys they come from)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as problem:
            raise error(f"{source} is not JSON ({problem}); {expected}") from None
    if not isinstance(value, Mapping):
        raise error(f"{source} is a JSON {type(value).__name__}; {expected}")
    return value
