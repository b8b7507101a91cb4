"""The whole fleet as one component: what the stack program deploys, for any Pulumi program to deploy.

:class:`McpFleet` wires the components exactly as a stack of this project
needs them: a stamp per region (plan, autoscale, secrets, the optional
private network, site, staging slot, operations: components/stamp.py), what
the regions share (resource group, key rings, monitoring, the optional Front
Door), the package of the chosen server and its delivery, region by region. :class:`McpFleetArgs` holds what a platform team chooses, one
field per config key of Pulumi.yaml with that key's default: from stack
config with :meth:`McpFleetArgs.from_config`, or set in code, where the same
checks of how values combine apply.

One fleet per stack: its children keep the logical names they had at the
stack's root before this component existed (``rg``, ``plan``, ``mcp``, ...),
so a second fleet in the same stack would register the same URNs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path

import pulumi

from app.ratelimit.spec import ToolLimits, to_json
from components.canary import CanaryPolicy
from components.delivery import Delivery, DeliveryArgs, RegionalSwaps, RegionalSwapsArgs, RegionTarget
from components.front_door import FrontDoor, FrontDoorArgs, FrontDoorOrigin
from components.monitoring import Monitoring, MonitoringArgs
from components.package import build_package
from components.plan import previous_plan_id
from components.rate_limit_store import DEFAULT_REDIS_SKU, REDIS_SKUS, RateLimitStore, RateLimitStoreArgs
from components.resource_group import resource_group
from components.secrets import key_rings
from components.server_source import ServerSource
from components.settings import (
    EMAIL,
    FRONT_DOOR_SKUS,
    MAX_INSTANCES,
    MIN_INSTANCES,
    ORIGIN,
    PREMIUM_V3,
    PYTHON_VERSIONS,
    RESOURCE_GROUP_NAME,
    SHORT_LABEL,
    SKUS,
    EasyAuth,
    Sku,
    boolean,
    canary_keys,
    choice,
    easy_auth_keys,
    integer,
    key_ring,
    optional_text,
    rate_limits,
    read_config,
    region_list,
    roles_by_tool,
    server_keys,
    text_list,
    validate,
    workbook_name,
)
from components.site_config import RateLimiting
from components.stamp import RegionStamp, RegionStampArgs, stamp_name

TYPE = "mcpscale:azure:McpFleet"
SECRETS_TYPE = "mcpscale:azure:Secrets"


@dataclass(frozen=True)
class McpFleetArgs:
    """What a platform team chooses. Each field but ``location``, ``project`` and ``stack`` is read from the
    config key it names (the snake_case of the key, where the README documents it), with that key's default."""

    location: str
    """The Azure region (config ``azure-native:location``)."""
    _: KW_ONLY  # the rest by name: their order is the config schema's, which may grow anywhere
    instance_count: int = integer("instanceCount", 3, MIN_INSTANCES, MAX_INSTANCES)
    sku: Sku = choice("sku", "P0v3", SKUS)
    python_version: str = choice("pythonVersion", "3.12", PYTHON_VERSIONS)
    autoscale: bool = boolean("autoscale", True)
    autoscale_max_count: int = integer("autoscaleMaxCount", 10, MIN_INSTANCES, PREMIUM_V3.max_instances)
    cpu_scale_out_threshold: int = integer("cpuScaleOutThreshold", 70, 2, 99)
    cpu_scale_in_threshold: int = integer("cpuScaleInThreshold", 30, 1, 98)
    staging_slot: bool = boolean("stagingSlot", True)
    swap: str | None = optional_text("swap", SHORT_LABEL, "expected a short label (at most 128 characters)")
    """Each new value swaps staging into production once."""
    zone_redundant: bool = boolean("zoneRedundant", False)
    resource_group_name: str | None = optional_text(
        "resourceGroupName",
        RESOURCE_GROUP_NAME,
        "expected an existing resource group's name (1-90 letters, digits, '-', '_', '.', '(', ')'; "
        "not ending in '.'), or unset to create one",
    )
    """An existing group to deploy into; None: the fleet creates its own."""
    allowed_origins: tuple[str, ...] = text_list(
        "allowedOrigins",
        ORIGIN,
        "expected comma-separated origins like https://app.example.com (scheme://host[:port], no path)",
    )
    easy_auth: EasyAuth | None = easy_auth_keys()
    require_allowed_client_apps: bool = boolean("requireAllowedClientApps", False)
    """Refuse Easy Auth open to any client app in the tenant unless ``easy_auth.allow_any_client_app`` (prod)."""
    alert_emails: tuple[str, ...] = text_list(
        "alertEmails", EMAIL, "expected comma-separated e-mail addresses like ops@example.com"
    )
    key_vault_purge_protection: bool = boolean("keyVaultPurgeProtection", True)
    private_networking: bool = boolean("privateNetworking", False)
    """Site and slot in a virtual network, the Key Vault reachable only through its private endpoint there."""
    regions: tuple[str, ...] = region_list("regions")
    """A stamp per region, the first (``location``) the primary; empty: one stamp in ``location``."""
    front_door: bool = boolean("frontDoor", False)
    """Azure Front Door as the one public entry, the sites locked to it; needed by more than one region."""
    front_door_sku: str = choice("frontDoorSku", "Standard", FRONT_DOOR_SKUS)
    handle_keys: pulumi.Input[str] | None = key_ring("handleKeys")
    """Key rings ``kid:secret[,kid:secret...]``; None: one key is generated and kept in the stack state."""
    request_state_keys: pulumi.Input[str] | None = key_ring("requestStateKeys")
    tool_roles: Mapping[str, tuple[str, ...]] = roles_by_tool("toolRoles")
    """Tool name -> Entra app roles, any of which may call it (MCP_TOOL_ROLES); empty: every tool open."""
    rate_limits: Mapping[str, ToolLimits] = rate_limits("rateLimits")
    """Tool name (or ``*``) -> its limits (MCP_RATE_LIMITS); non-empty: the fleet creates Azure Managed Redis."""
    rate_limits_fail_closed: bool = boolean("rateLimitsFailClosed", False)
    redis_sku: str = choice("redisSku", DEFAULT_REDIS_SKU, REDIS_SKUS)
    server: ServerSource = server_keys()
    """Check a team's server with components.server_source.resolve_server_source(server, folder)."""
    canary: CanaryPolicy | None = canary_keys()
    """Each new package released to a share of production traffic on the staging slot first; None: off."""
    project: str = field(default_factory=pulumi.get_project)
    """Tag values and the workbook's name; the running program's project and stack unless given."""
    stack: str = field(default_factory=pulumi.get_stack)

    def __post_init__(self) -> None:
        validate(self)

    @classmethod
    def from_config(cls, config: pulumi.Config | None = None) -> McpFleetArgs:
        """The fleet the stack's config describes; :class:`~components.settings.ConfigError` lists every problem."""
        return read_config(cls, config)

    @property
    def tags(self) -> dict[str, str]:
        """Tags every resource carries; components add ``component``."""
        return {"project": self.project, "stack": self.stack}

    @property
    def stamp_regions(self) -> tuple[str, ...]:
        """The regions with a stamp, the primary first."""
        return self.regions or (self.location,)

    @property
    def workers_per_instance(self) -> int:
        """Uvicorn workers per instance: one per core of the plan's sku."""
        return self.sku.cores


class McpFleet(pulumi.ComponentResource):
    """An MCP server on App Service at scale: every resource a stack of this project has, as children.

    One :class:`~components.stamp.RegionStamp` per region (the primary first),
    and what the regions share, in the primary region: the resource group,
    the key rings (generated once), Log Analytics, Application Insights and
    the workbook, and with ``front_door`` the Front Door every site is locked
    to. With autoscale on, the plan keeps the capacity autoscale reached by
    reading this stack's ``planId`` output (``components.plan.PLAN_ID_OUTPUT``)
    from its last deployment: the program exports :attr:`plan_id` under that name.
    """

    resource_group_name: pulumi.Output[str]
    plan_id: pulumi.Output[str]
    """The primary region's plan."""
    site_name: pulumi.Output[str]
    site_url: pulumi.Output[str]
    mcp_url: pulumi.Output[str]
    """Front Door's MCP URL with Front Door on, else the primary site's."""
    staging_mcp_url: pulumi.Output[str] | None
    """The primary's staging slot; None when the staging slot is off."""
    region_urls: pulumi.Output[dict[str, str]]
    """Region -> its production site's URL."""
    package_sha256: str
    app_insights_name: pulumi.Output[str]
    workbook_id: pulumi.Output[str]
    vault_name: pulumi.Output[str]
    autoscale_range: str
    """``min..max`` instances, or ``off``."""

    stamps: list[RegionStamp]
    monitoring: Monitoring
    rate_limit_store: RateLimitStore | None
    front_door: FrontDoor | None
    deliveries: list[Delivery]
    rollout: RegionalSwaps | None

    def __init__(self, name: str, args: McpFleetArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        # Stacks deployed before this component existed hold these children at their root, under the same names;
        # the alias moves them under the fleet in state instead of replacing every resource (their own children
        # inherit it). A new stack has nothing there, and the alias matches nothing.
        before_fleet = pulumi.Alias(parent=pulumi.ROOT_STACK_RESOURCE)
        moved = pulumi.ResourceOptions(parent=self, aliases=[before_fleet])
        tags = args.tags
        regions = args.stamp_regions
        primary = regions[0]

        group = resource_group(primary, args.resource_group_name, tags, moved)
        # Once for the fleet, so every region's vault holds the same rings. A generated ring was made under the
        # secrets component before; its alias keeps that key.
        rings = key_rings(
            args.handle_keys,
            args.request_state_keys,
            pulumi.ResourceOptions(parent=self),
            generated_before=[
                pulumi.create_urn("secrets", SECRETS_TYPE, parent=self),
                pulumi.create_urn("secrets", SECRETS_TYPE),
            ],
        )

        # The workbook charts every stamp, and Front Door is built from the sites it locks: both are known only once
        # the stamps exist.
        # (A deferred output never resolved would hold the program open: each is made only where it is resolved.)
        charted, resolve_charted = pulumi.deferred_output()
        front_door_id, resolve_front_door_id = pulumi.deferred_output() if args.front_door else (None, None)
        self.monitoring = Monitoring(
            "monitoring",
            MonitoringArgs(
                resource_group_name=group,
                location=primary,
                stamps=charted,
                workbook_name=workbook_name(args.project, args.stack),
                workbook_display_name=f"MCP fleet ({args.project}/{args.stack})",
                tags=tags,
                front_door=args.front_door,
            ),
            moved,
        )

        # Rate limits: one Redis for the fleet, in the primary region, whose counters every region's instances
        # share; each region's site and slot identities get data access to it, which their settings wait for.
        self.rate_limit_store = None
        rate_limiting = None
        if args.rate_limits:
            self.rate_limit_store = RateLimitStore(
                "rate-limits",
                RateLimitStoreArgs(
                    resource_group_name=group,
                    location=primary,
                    tags=tags,
                    sku=args.redis_sku,
                    private_network_only=args.private_networking,
                ),
                pulumi.ResourceOptions(parent=self),
            )
            rate_limiting = RateLimiting(
                limits=to_json(args.rate_limits),
                redis_url=self.rate_limit_store.url,
                # Every instance the fleet may run shares the limits while Redis is unreachable: the most
                # autoscale may reach, in every region.
                instances=len(regions) * (args.autoscale_max_count if args.autoscale else args.instance_count),
                fail_closed=args.rate_limits_fail_closed,
            )

        self.stamps = []
        for region in regions:
            is_primary = region == primary
            self.stamps.append(
                RegionStamp(
                    stamp_name("stamp", region, is_primary),
                    RegionStampArgs(
                        region=region,
                        primary=is_primary,
                        settings=args,
                        resource_group_name=group,
                        key_rings=rings,
                        app_insights_connection_string=self.monitoring.connection_string,
                        telemetry_publisher=self.monitoring.publisher,
                        workspace_id=self.monitoring.workspace_id,
                        front_door_id=front_door_id,
                        rate_limiting=rate_limiting,
                        rate_limit_store=self.rate_limit_store,
                        previous_plan_id=previous_plan_id() if args.autoscale and is_primary else None,
                        moved_from=[pulumi.Alias(parent=self), before_fleet] if is_primary else [],
                    ),
                    pulumi.ResourceOptions(parent=self),
                )
            )
        first = self.stamps[0]
        resolve_charted(pulumi.Output.all(*(stamp.charts for stamp in self.stamps)))

        self.front_door = None
        if args.front_door:
            self.front_door = FrontDoor(
                "front-door",
                FrontDoorArgs(
                    resource_group_name=group,
                    origins=[FrontDoorOrigin(s.region, s.site.default_host_name) for s in self.stamps],
                    workspace_id=self.monitoring.workspace_id,
                    tags=tags,
                    premium=args.front_door_sku == "Premium",
                ),
                pulumi.ResourceOptions(parent=self),
            )
            if resolve_front_door_id is not None:
                resolve_front_door_id(self.front_door.front_door_id)

        # The deploy commands run in the program's folder and find the package by its relative path there: this
        # project's root for __main__.py, its own folder for another program.
        package = build_package(source=args.server.folder, server=args.server.spec, working_dir=Path.cwd())
        # One region without Front Door swaps as a single stack always has; otherwise one region after the other,
        # each verified through its own host name (the sites admit only Front Door, and a rule for the deployer).
        region_by_region = args.front_door
        self.deliveries = [
            Delivery(
                stamp_name("delivery", stamp.region, stamp is first),
                DeliveryArgs(
                    site_id=stamp.site.id,
                    package=package,
                    staging_slot=stamp.slot.slot_name if stamp.slot else None,
                    swap=None if region_by_region else args.swap,
                    key_vault_settings=tuple(stamp.secrets.app_settings),
                    production_url=stamp.site.url,
                    # A canary releases one region's package; behind Front Door regions go one after the other by swap.
                    canary=None if region_by_region else args.canary,
                    app_insights_id=self.monitoring.publisher.scope,  # the component the telemetry publisher role is on
                    # Logs flow before the first deploy, so its Oryx build shows in the console logs.
                    depends_on=[stamp.site, *([stamp.slot] if stamp.slot else []), *stamp.operations.log_settings],
                ),
                moved,
            )
            for stamp in self.stamps
        ]
        self.rollout = None
        if region_by_region and args.swap is not None:
            self.rollout = RegionalSwaps(
                "rollout",
                RegionalSwapsArgs(
                    regions=[
                        RegionTarget(
                            region=stamp.region,
                            site_id=stamp.site.id,
                            production_url=stamp.site.url,
                            staging_slot=stamp.slot.slot_name if stamp.slot else "",
                            deployed=[
                                d for d in (delivery.staging_deploy, delivery.production_deploy) if d is not None
                            ],
                            swapped_before=(delivery, "delivery") if stamp is first else None,
                        )
                        for stamp, delivery in zip(self.stamps, self.deliveries, strict=True)
                    ],
                    swap=args.swap,
                    build_id=package.build_id,
                ),
                pulumi.ResourceOptions(parent=self),
            )

        self.resource_group_name = group
        self.plan_id = first.plan.id
        self.site_name = first.site.name
        self.site_url = first.site.url
        self.mcp_url = self.front_door.mcp_url if self.front_door else pulumi.Output.concat(first.site.url, "/mcp")
        self.staging_mcp_url = pulumi.Output.concat(first.slot.url, "/mcp") if first.slot else None
        self.region_urls = pulumi.Output.all(*(s.site.url for s in self.stamps)).apply(
            lambda urls: dict(zip(regions, urls, strict=True))
        )
        self.package_sha256 = package.sha256
        self.app_insights_name = self.monitoring.app_insights_name
        self.workbook_id = self.monitoring.workbook_id
        self.vault_name = first.secrets.vault_name
        self.autoscale_range = f"{args.instance_count}..{args.autoscale_max_count}" if args.autoscale else "off"
        self.register_outputs(
            {
                "resourceGroup": self.resource_group_name,
                "planId": self.plan_id,
                "siteName": self.site_name,
                "siteUrl": self.site_url,
                "mcpUrl": self.mcp_url,
                "stagingMcpUrl": self.staging_mcp_url,
                "regionUrls": self.region_urls,
                "packageSha256": self.package_sha256,
                "appInsightsName": self.app_insights_name,
                "workbookId": self.workbook_id,
                "vaultName": self.vault_name,
                "autoscaleRange": self.autoscale_range,
            }
        )
