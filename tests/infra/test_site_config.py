"""The one site config: runtime, security baseline and app settings shared by site and slot."""

from __future__ import annotations

import json

import pulumi
import pytest
from pulumi_azure_native import web

from app.__main__ import build_parser
from components.site_config import STARTUP_COMMAND, AppConfig, app_settings_resource, site_config

CONNECTION = "InstrumentationKey=abc;IngestionEndpoint=https://example.in.applicationinsights.azure.com/"
# Azure's ceiling for WEBSITES_CONTAINER_STOP_TIME_LIMIT (Learn, "Environment variables and app settings in
# Azure App Service": "Default is 5. You can increase to a maximum of 120").
AZURE_MAX_STOP_TIME_LIMIT_SECONDS = 120
KEY_VAULT_SETTINGS = {
    "MCP_HANDLE_KEYS": "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/h/)",
    "MCP_REQUEST_STATE_KEYS": "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/r/)",
}


def wire_config(infra, config: AppConfig):
    """The WebApp registration of a site built from ``site_config(config)``."""
    run = infra.run(lambda: web.WebApp("app", resource_group_name="rg", site_config=site_config(config)))
    return run.one("azure-native:web:WebApp")


def wire_settings(infra, config: AppConfig, slot: str):
    """The app-settings registration for ``slot`` (the site's own resource for production)."""

    def program() -> None:
        where = None if slot == "production" else slot
        app_settings_resource("app", "site", "rg", config, where, pulumi.ResourceOptions())

    run = infra.run(program)
    token = "azure-native:web:WebAppApplicationSettings" + ("" if slot == "production" else "Slot")
    return run.one(token)


def app_config(**overrides) -> AppConfig:
    values = {
        "python_version": "3.12",
        "workers": 2,
        "key_vault_settings": KEY_VAULT_SETTINGS,
        "app_insights_connection_string": CONNECTION,
    }
    values.update(overrides)
    return AppConfig(**values)


def settings_of(registration) -> dict[str, str]:
    return registration.get("properties")


def test_startup_command_is_the_app_cli_on_all_interfaces_with_the_port_from_app_service():
    assert STARTUP_COMMAND == "python -m app --host 0.0.0.0"


def test_runtime_health_and_security_baseline(infra):
    app = wire_config(infra, app_config(python_version="3.13"))
    config = app.get("siteConfig")
    expected = {
        "linuxFxVersion": "PYTHON|3.13",
        "appCommandLine": STARTUP_COMMAND,
        "alwaysOn": True,
        "healthCheckPath": "/health",
        "http20Enabled": True,
        "minTlsVersion": "1.2",
        "scmMinTlsVersion": "1.2",
        "ftpsState": "Disabled",
        "remoteDebuggingEnabled": False,
        "use32BitWorkerProcess": False,
    }
    assert {k: config[k] for k in expected} == expected


def test_app_settings_carry_the_app_contract(infra):
    assert settings_of(wire_settings(infra, app_config(), "production")) == {
        "SCM_DO_BUILD_DURING_DEPLOYMENT": "true",
        **KEY_VAULT_SETTINGS,
        "MCP_SLOT_NAME": "production",
        "APPLICATIONINSIGHTS_CONNECTION_STRING": CONNECTION,
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Authorization=AAD",
        "WEB_CONCURRENCY": "2",
        "WEBSITES_CONTAINER_STOP_TIME_LIMIT": "30",
        "WEBSITE_SWAP_WARMUP_PING_PATH": "/health",
        "WEBSITE_SWAP_WARMUP_PING_STATUSES": "200",
    }


@pytest.mark.parametrize("slot", ["production", "staging"])
def test_the_platform_waits_out_the_app_drain_before_it_kills_an_instance(infra, monkeypatch, slot):
    monkeypatch.delenv("MCP_GRACEFUL_TIMEOUT", raising=False)
    drain = build_parser().parse_args([]).graceful_timeout  # what `python -m app` gives in-flight requests
    limit = int(settings_of(wire_settings(infra, app_config(), slot))["WEBSITES_CONTAINER_STOP_TIME_LIMIT"])
    assert drain < limit <= AZURE_MAX_STOP_TIME_LIMIT_SECONDS



def test_app_settings_carry_no_secret_so_diffs_stay_readable(infra):
    assert not wire_settings(infra, app_config(), "production").is_secret("properties")


def test_site_config_carries_no_app_settings_so_the_settings_resource_is_their_only_owner(infra):
    # The settings PUT replaces the whole collection; a second owner in siteConfig would undo it on every update.
    assert "appSettings" not in wire_config(infra, app_config()).get("siteConfig")


@pytest.mark.parametrize("slot", ["production", "staging"])
def test_the_settings_resource_targets_the_site_or_the_slot(infra, slot):
    settings = wire_settings(infra, app_config(), slot)
    expected = {"name": "site", "resourceGroupName": "rg"} | ({} if slot == "production" else {"slot": slot})
    assert {k: v for k, v in settings.inputs.items() if k != "properties"} == expected


def test_optional_settings_appear_only_when_configured(infra):
    plain = settings_of(wire_settings(infra, app_config(), "production"))
    assert "MCP_ALLOWED_ORIGINS" not in plain and "WEBSITE_AUTH_PRM_DEFAULT_WITH_SCOPES" not in plain
    configured = settings_of(
        wire_settings(
            infra,
            app_config(
                allowed_origins=("https://a.example", "https://b.example"), auth_scopes=("api://x/read", "api://x/call")
            ),
            "production",
        )
    )
    assert configured["MCP_ALLOWED_ORIGINS"] == "https://a.example,https://b.example"
    assert configured["WEBSITE_AUTH_PRM_DEFAULT_WITH_SCOPES"] == "api://x/read,api://x/call"


def test_tool_roles_become_mcp_tool_roles_json_only_when_configured(infra):
    assert "MCP_TOOL_ROLES" not in settings_of(wire_settings(infra, app_config(), "production"))
    roles = {"compute_primes": ("Primes.Run", "Admin")}
    configured = settings_of(wire_settings(infra, app_config(tool_roles=roles), "staging"))
    assert json.loads(configured["MCP_TOOL_ROLES"]) == {"compute_primes": ["Primes.Run", "Admin"]}


def test_site_and_slot_settings_differ_only_in_the_slot_name(infra):
    roles = {"tally": ("Tally.Use",)}
    production = settings_of(wire_settings(infra, app_config(tool_roles=roles), "production"))
    staging = settings_of(wire_settings(infra, app_config(tool_roles=roles), "staging"))
    assert (production.pop("MCP_SLOT_NAME"), staging.pop("MCP_SLOT_NAME")) == ("production", "staging")
    assert production == staging


def test_the_startup_command_is_fixed_whatever_the_server(infra):
    """The server is named by the package (tests/infra/test_package.py), so nothing here depends on it."""
    assert wire_config(infra, app_config()).get("siteConfig.appCommandLine") == STARTUP_COMMAND
