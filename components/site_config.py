"""The one site configuration shared by the production site and the staging slot.

Production and staging must run the same runtime, security baseline and app
settings, or a swap promotes something that was never tested. Both call
:func:`site_config` and :func:`app_settings` with the same
:class:`AppConfig`; only the slot name setting differs, and it is sticky (see
components/staging_slot.py).

App settings are their own resource (``WebAppApplicationSettings`` for the
site, ``...Slot`` for the slot), created after the identity's role
assignments, not part of ``siteConfig``: Azure's Key Vault references page
says to define app settings as their own resource after the identity exists
(learn.microsoft.com/azure/app-service/app-service-key-vault-references,
"Azure Resource Manager deployment"), because a reference that cannot be
resolved is handed to the app as the literal ``@Microsoft.KeyVault(...)``
string. That PUT replaces the whole collection, so *every* app setting lives
in that one resource and ``siteConfig`` carries none: two owners of one
collection would undo each other on every update. (A site's GET returns no
app settings in ``siteConfig``, so the site shows no drift either.) No code
runs before the settings exist: the site serves App Service's default page
until the first deploy, which waits for them (components/delivery.py).

Nothing in the settings is secret: the key rings are Key Vault references
(components/secrets.py) and telemetry authenticates with the site's identity
(components/monitoring.py), so every diff of them stays readable.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi_azure_native import web

from app.contract import (
    ALLOWED_ORIGINS_ENV,
    APP_INSIGHTS_AUTHENTICATION_ENV,
    APP_INSIGHTS_CONNECTION_STRING_ENV,
    GRACEFUL_TIMEOUT_SECONDS,
    RATE_LIMIT_INSTANCES_ENV,
    RATE_LIMITS_ENV,
    RATE_LIMITS_FAIL_CLOSED_ENV,
    REDIS_URL_ENV,
    REGION_ENV,
    SLOT_NAME_ENV,
    TOOL_ROLES_ENV,
)
from components.front_door_lock import front_door_access

# App Service passes the port in $PORT; the app reads it (see app's CLI).
STARTUP_COMMAND = "python -m app --host 0.0.0.0"
HEALTH_CHECK_PATH = "/health"

# To stop a container (restart, scale-in, swap, deploy) App Service sends it
# SIGTERM and kills it WEBSITES_CONTAINER_STOP_TIME_LIMIT seconds later: 5 by
# default, at most 120 (Learn, "Environment variables and app settings in Azure
# App Service", https://learn.microsoft.com/azure/app-service/reference-app-settings#custom-containers;
# the built-in Python stack runs in a container too). At 5 s the kill would cut
# the app's drain short, so the limit is the drain plus a margin for uvicorn to
# close its connections and the telemetry exporter to flush.
STOP_MARGIN_SECONDS = 10
STOP_TIME_LIMIT_SECONDS = GRACEFUL_TIMEOUT_SECONDS + STOP_MARGIN_SECONDS

PRODUCTION_SLOT = "production"
STAGING_SLOT = "staging"

# App settings that stay with their slot when slots swap. The one
# WebAppSlotConfigurationNames resource (components/staging_slot.py) sends
# exactly this list, and that resource owns the site's whole list: a name
# not here is not sticky, even if set by hand in the portal.
STICKY_APP_SETTINGS = (SLOT_NAME_ENV,)

# The exporter authenticates to Application Insights with the instance's
# system-assigned identity (local auth is off on the component).
APP_INSIGHTS_AUTHENTICATION = "Authorization=AAD"


@dataclass(frozen=True)
class RateLimiting:
    """The app's rate limits and the Redis its instances share them through (app/ratelimit/)."""

    limits: str
    """``MCP_RATE_LIMITS``: the normalized JSON (app.ratelimit.spec.to_json)."""
    redis_url: pulumi.Input[str]
    instances: int
    """``MCP_RATE_LIMIT_INSTANCES``: the most instances that may share the limits (the autoscale maximum), so
    that while Redis is unreachable the local shares add up to at most the limit however far the plan scaled."""
    fail_closed: bool = False


@dataclass(frozen=True)
class AppConfig:
    """Inputs of the site config that production and staging share."""

    python_version: str
    workers: int
    # App setting name -> Key Vault reference (components/secrets.py).
    key_vault_settings: Mapping[str, pulumi.Input[str]]
    app_insights_connection_string: pulumi.Input[str]
    allowed_origins: tuple[str, ...] = ()
    # Scopes published as MCP protected-resource metadata when Easy Auth is on.
    auth_scopes: tuple[str, ...] = ()
    # Tool name -> Entra app roles, any of which may call it (the app's MCP_TOOL_ROLES).
    tool_roles: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # None: no limits, and no Redis.
    rate_limiting: RateLimiting | None = None
    # The Azure region the app runs in (MCP_REGION, which its telemetry carries); empty: not set.
    region: str = ""
    # The Front Door profile's frontDoorId: site and slot admit only its traffic (components/front_door_lock.py).
    front_door_id: pulumi.Input[str] | None = None


def app_settings(config: AppConfig, slot_name: str) -> dict[str, pulumi.Input[str]]:
    """The app settings of the site or slot ``slot_name``.

    The server to serve is not among them: it travels in the package
    (components/package.py, ``mcp-server.txt``), with the code it names.
    """
    settings = {
        # zip deploy runs Oryx: pip install -r requirements.txt on the server.
        "SCM_DO_BUILD_DURING_DEPLOYMENT": "true",
        **config.key_vault_settings,
        SLOT_NAME_ENV: slot_name,
        APP_INSIGHTS_CONNECTION_STRING_ENV: config.app_insights_connection_string,
        APP_INSIGHTS_AUTHENTICATION_ENV: APP_INSIGHTS_AUTHENTICATION,
        "WEB_CONCURRENCY": str(config.workers),
        "WEBSITES_CONTAINER_STOP_TIME_LIMIT": str(STOP_TIME_LIMIT_SECONDS),
        # A swap first warms every staging instance until /health answers 200.
        "WEBSITE_SWAP_WARMUP_PING_PATH": HEALTH_CHECK_PATH,
        "WEBSITE_SWAP_WARMUP_PING_STATUSES": "200",
    }
    if config.allowed_origins:
        settings[ALLOWED_ORIGINS_ENV] = ",".join(config.allowed_origins)
    if config.auth_scopes:
        settings["WEBSITE_AUTH_PRM_DEFAULT_WITH_SCOPES"] = ",".join(config.auth_scopes)
    if config.region:
        settings[REGION_ENV] = config.region
    if config.tool_roles:
        settings[TOOL_ROLES_ENV] = json.dumps({tool: list(roles) for tool, roles in config.tool_roles.items()})
    if config.rate_limiting is not None:
        limiting = config.rate_limiting
        settings[RATE_LIMITS_ENV] = limiting.limits
        settings[REDIS_URL_ENV] = limiting.redis_url
        settings[RATE_LIMIT_INSTANCES_ENV] = str(limiting.instances)
        if limiting.fail_closed:
            settings[RATE_LIMITS_FAIL_CLOSED_ENV] = "true"
    return settings


def site_config(config: AppConfig) -> web.SiteConfigArgs:
    """The SiteConfig of the production site and of the slot (app settings apart: :func:`app_settings_resource`)."""
    return web.SiteConfigArgs(
        linux_fx_version=f"PYTHON|{config.python_version}",
        app_command_line=STARTUP_COMMAND,
        always_on=True,
        health_check_path=HEALTH_CHECK_PATH,
        http20_enabled=True,
        min_tls_version=web.SupportedTlsVersions.SUPPORTED_TLS_VERSIONS_1_2,
        scm_min_tls_version=web.SupportedTlsVersions.SUPPORTED_TLS_VERSIONS_1_2,
        ftps_state=web.FtpsState.DISABLED,
        remote_debugging_enabled=False,
        use32_bit_worker_process=False,
        **(front_door_access(config.front_door_id) if config.front_door_id is not None else {}),
    )


def app_settings_resource(
    name: str,
    site_name: pulumi.Input[str],
    resource_group_name: pulumi.Input[str],
    config: AppConfig,
    slot: str | None,
    opts: pulumi.ResourceOptions,
) -> web.WebAppApplicationSettings | web.WebAppApplicationSettingsSlot:
    """The whole app-settings collection of the site (``slot=None``) or of ``slot``.

    ``opts`` must make it wait for the identity's role assignments (see the
    module docstring); the values are those of :func:`app_settings`.
    """
    if slot is None:
        return web.WebAppApplicationSettings(
            f"{name}-app-settings",
            name=site_name,
            resource_group_name=resource_group_name,
            properties=app_settings(config, PRODUCTION_SLOT),
            opts=opts,
        )
    return web.WebAppApplicationSettingsSlot(
        f"{name}-app-settings",
        name=site_name,
        slot=slot,
        resource_group_name=resource_group_name,
        properties=app_settings(config, slot),
        opts=opts,
    )


def web_app_args(
    config: AppConfig,
    plan_id: pulumi.Input[str],
    location: str,
    subnet_id: pulumi.Input[str] | None = None,
) -> dict[str, Any]:
    """Arguments that WebApp (production) and WebAppSlot share: plan, runtime, security baseline, network.

    With ``subnet_id`` the app joins that subnet by regional virtual network
    integration and routes all its outbound traffic into the network.
    """
    network: dict[str, Any] = {}
    if subnet_id is not None:
        network = {
            "virtual_network_subnet_id": subnet_id,
            # allTraffic, as Learn recommends ("Manage Azure App Service virtual network integration routing"):
            # application traffic and configuration traffic, which includes resolving Key Vault references
            # ("Integrate your app with an Azure virtual network", Routes), so both reach the vault's private
            # endpoint; a Linux app must route all traffic for that ("Use Key Vault references as app
            # settings", Access network-restricted vaults). Internet-bound traffic still leaves from the app's
            # outbound addresses while no route table says otherwise, so App Insights ingestion and Entra ID
            # are reached as before.
            "outbound_vnet_routing": web.OutboundVnetRoutingArgs(all_traffic=True),
        }
    return {
        "location": location,
        "kind": "app,linux",
        "reserved": True,
        "server_farm_id": plan_id,
        "https_only": True,
        # The app is stateless, so no ARR affinity cookie: the load balancer spreads every request freely.
        "client_affinity_enabled": False,
        "identity": web.ManagedServiceIdentityArgs(type=web.ManagedServiceIdentityType.SYSTEM_ASSIGNED),
        "site_config": site_config(config),
        **network,
    }


def basic_auth_publishing_off(
    name: str,
    site_name: pulumi.Input[str],
    resource_group_name: pulumi.Input[str],
    slot: str | None,
    opts: pulumi.ResourceOptions,
) -> list[pulumi.CustomResource]:
    """Turn off FTP and SCM basic-auth publishing on the site (``slot=None``) or on ``slot``.

    Deploys then authenticate with Entra ID tokens only (``az webapp deploy``).
    """
    if slot is None:
        policies = {"ftp": web.WebAppFtpAllowed, "scm": web.WebAppScmAllowed}
        where: dict[str, str] = {}
    else:
        policies = {"ftp": web.WebAppFtpAllowedSlot, "scm": web.WebAppScmAllowedSlot}
        where = {"slot": slot}
    return [
        policy(
            f"{name}-{protocol}-basic-auth",
            name=site_name,
            resource_group_name=resource_group_name,
            allow=False,
            **where,
            opts=opts,
        )
        for protocol, policy in policies.items()
    ]
