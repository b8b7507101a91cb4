"""Names telemetry emits: the contract with the workbook, and the MCP semantic conventions.

``components/workbook.py`` queries these names and repeats them (``components``
never imports ``app``); tests/app/telemetry/test_conventions.py checks both sides agree.
"""

from __future__ import annotations

# --- contract with components/workbook.py ------------------------------------
ATTR_METHOD = "mcp.method.name"
ATTR_TOOL = "gen_ai.tool.name"
ATTR_PROTOCOL_VERSION = "mcp.protocol.version"
ATTR_REQUEST_ID = "jsonrpc.request.id"
ATTR_ERROR_TYPE = "error.type"
ATTR_RPC_STATUS_CODE = "rpc.response.status_code"
# The Azure Monitor exporter leaves `error.type` and every `rpc.*` attribute
# out of a request's customDimensions (it treats them as standard fields), so
# the span carries copies under names it keeps; metrics keep `error.type`.
DIM_ERROR_TYPE = "mcp.error.type"
DIM_ERROR_CODE = "jsonrpc.error.code"
# The caller's object id: the exporter moves `enduser.id` into `user_AuthenticatedId` (and out of customDimensions).
ATTR_ENDUSER_ID = "enduser.id"
AUDIT_EVENT = "mcp.tool_call"
DIM_OUTCOME = "mcp.outcome"
OUTCOME_OK = "ok"
MEASURE_DURATION_MS = "duration_ms"
SERVICE_NAME_PREFIX = "mcp-server-"
METRIC_OPERATION_DURATION = "mcp.server.operation.duration"

# --- further semantic-convention attributes ----------------------------------
ATTR_PROMPT = "gen_ai.prompt.name"
ATTR_RESOURCE_URI = "mcp.resource.uri"
ATTR_OPERATION = "gen_ai.operation.name"
TOOL_ERROR = "tool_error"
# Client-chosen strings become span names and metric dimensions; cap them.
MAX_NAME = 128
# The instrumentation scope of the span, the duration metric and the audit record.
SCOPE = "app.telemetry"

# Method names a client cannot inflate: MCP 2026-07-28 plus the handshake era.
# Anything else the server rejects (-32601) is recorded as "_OTHER", so a
# client sending random method names cannot blow up span names or metric series.
KNOWN_METHODS = frozenset(
    {
        "completion/complete", "elicitation/create", "initialize", "logging/setLevel", "ping",
        "prompts/get", "prompts/list", "resources/list", "resources/read", "resources/subscribe",
        "resources/templates/list", "resources/unsubscribe", "roots/list", "sampling/createMessage",
        "server/discover", "subscriptions/listen", "tools/call", "tools/list",
        "notifications/cancelled", "notifications/initialized", "notifications/message",
        "notifications/progress", "notifications/roots/list_changed",
    }
)  # fmt: skip
OTHER_METHOD = "_OTHER"
