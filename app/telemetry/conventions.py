"""Names telemetry emits: the contract with the workbook (in `app.contract`), and the MCP semantic conventions.

``components/workbook.py`` queries the contract's names; both sides import them from `app.contract`.
"""

from __future__ import annotations

from app.contract import (  # noqa: F401 (re-exported: the names the telemetry package emits)
    ATTR_ERROR_TYPE,
    ATTR_METHOD,
    ATTR_PROTOCOL_VERSION,
    ATTR_REQUEST_ID,
    ATTR_TOOL,
    AUDIT_EVENT,
    DIM_ERROR_CODE,
    DIM_ERROR_TYPE,
    DIM_OUTCOME,
    MEASURE_DURATION_MS,
    METRIC_OPERATION_DURATION,
    OUTCOME_OK,
    SERVICE_NAME_PREFIX,
)

ATTR_RPC_STATUS_CODE = "rpc.response.status_code"
# The Azure Monitor exporter leaves `error.type` and every `rpc.*` attribute
# out of a request's customDimensions (it treats them as standard fields), so
# the span carries copies under DIM_ERROR_TYPE and DIM_ERROR_CODE; metrics keep `error.type`.
# The caller's object id: the exporter moves `enduser.id` into `user_AuthenticatedId` (and out of customDimensions).
ATTR_ENDUSER_ID = "enduser.id"

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
