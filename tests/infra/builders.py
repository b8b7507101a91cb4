"""Inputs that the component tests share: a plan id, stack tags, an Easy Auth setup, role grants and SiteArgs."""

from __future__ import annotations

from components.roles import KEY_VAULT_SECRETS_USER, MONITORING_METRICS_PUBLISHER, RoleGrant
from components.settings import EasyAuth
from components.site import SiteArgs
from components.site_config import AppConfig

PLAN_ID = "/subscriptions/s/resourceGroups/rg-mcp/providers/Microsoft.Web/serverfarms/plan1"
VAULT_ID = "/subscriptions/s/resourceGroups/rg-mcp/providers/Microsoft.KeyVault/vaults/kv1"
INSIGHTS_ID = "/subscriptions/s/resourceGroups/rg-mcp/providers/Microsoft.Insights/components/ai1"
TAGS = {"project": "mcpscale-azure", "stack": "test"}
AUTH = EasyAuth("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "11111111-2222-3333-4444-555555555555", ("api://mcp/x",))
KEY_VAULT_SETTINGS = {
    "MCP_HANDLE_KEYS": "@Microsoft.KeyVault(SecretUri=https://kv1.vault.azure.net/secrets/mcp-handle-keys/)",
    "MCP_REQUEST_STATE_KEYS": "@Microsoft.KeyVault(SecretUri=https://kv1.vault.azure.net/secrets/mcp-request-state-keys/)",
}
GRANTS = (
    RoleGrant("secrets-user", VAULT_ID, KEY_VAULT_SECRETS_USER),
    RoleGrant("metrics-publisher", INSIGHTS_ID, MONITORING_METRICS_PUBLISHER),
)


def site_args(
    easy_auth: EasyAuth | None = None,
    python_version: str = "3.12",
    workers: int = 1,
    allowed_origins: tuple[str, ...] = (),
) -> SiteArgs:
    """SiteArgs in resource group ``rg-mcp``, westeurope, on :data:`PLAN_ID`."""
    return SiteArgs(
        resource_group_name="rg-mcp",
        location="westeurope",
        plan_id=PLAN_ID,
        app=AppConfig(
            python_version=python_version,
            workers=workers,
            key_vault_settings=KEY_VAULT_SETTINGS,
            app_insights_connection_string="InstrumentationKey=abc",
            allowed_origins=allowed_origins,
        ),
        easy_auth=easy_auth,
        grants=GRANTS,
        tags=TAGS,
    )
