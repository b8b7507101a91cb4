"""The whole fleet as one component: what the stack program deploys, for any Pulumi program to deploy.

:class:`McpFleet` wires the components exactly as a stack of this project
needs them (resource group, plan, autoscale, secrets, the optional private
network, monitoring, site, staging slot, operations, the package of the
chosen server and its delivery). :class:`McpFleetArgs` holds what a platform team chooses, one
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

from components.autoscale import Autoscale, AutoscaleArgs
from components.delivery import Delivery, DeliveryArgs
from components.monitoring import Monitoring, MonitoringArgs
from components.network import KEY_VAULT_GROUP, KEY_VAULT_ZONE, Network, NetworkArgs
from components.operations import Operations, OperationsArgs
from components.package import build_package
from components.plan import Plan, PlanArgs, previous_plan_id
from components.resource_group import resource_group
from components.secrets import Secrets, SecretsArgs
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
    choice,
    easy_auth_keys,
    integer,
    key_ring,
    optional_text,
    read_config,
    region_list,
    roles_by_tool,
    server_keys,
    text_list,
    validate,
    workbook_name,
)
from components.site import Site, SiteArgs
from components.site_config import AppConfig
from components.staging_slot import StagingSlot, StagingSlotArgs

TYPE = "mcpscale:azure:McpFleet"


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
    server: ServerSource = server_keys()
    """Check a team's server with components.server_source.resolve_server_source(server, folder)."""
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

    With autoscale on, the plan keeps the capacity autoscale reached by
    reading this stack's ``planId`` output (``components.plan.PLAN_ID_OUTPUT``)
    from its last deployment: the program exports :attr:`plan_id` under that name.
    """

    resource_group_name: pulumi.Output[str]
    plan_id: pulumi.Output[str]
    site_name: pulumi.Output[str]
    site_url: pulumi.Output[str]
    mcp_url: pulumi.Output[str]
    staging_mcp_url: pulumi.Output[str] | None
    """None when the staging slot is off."""
    package_sha256: str
    app_insights_name: pulumi.Output[str]
    workbook_id: pulumi.Output[str]
    vault_name: pulumi.Output[str]
    autoscale_range: str
    """``min..max`` instances, or ``off``."""

    plan: Plan
    autoscale: Autoscale | None
    secrets: Secrets
    network: Network | None
    monitoring: Monitoring
    site: Site
    slot: StagingSlot | None
    operations: Operations
    delivery: Delivery

    def __init__(self, name: str, args: McpFleetArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        # Stacks deployed before this component existed hold these children at their root, under the same names;
        # the alias moves them under the fleet in state instead of replacing every resource (their own children
        # inherit it). A new stack has nothing there, and the alias matches nothing.
        moved = pulumi.ResourceOptions(parent=self, aliases=[pulumi.Alias(parent=pulumi.ROOT_STACK_RESOURCE)])
        tags = args.tags

        group = resource_group(args.location, args.resource_group_name, tags, moved)
        where = {"resource_group_name": group, "location": args.location}

        self.plan = Plan(
            "plan",
            PlanArgs(
                **where,
                sku=args.sku,
                instance_count=args.instance_count,
                autoscale=args.autoscale,
                zone_redundant=args.zone_redundant,
                previous_plan_id=previous_plan_id() if args.autoscale else None,
                tags=tags,
            ),
            moved,
        )

        self.autoscale = None
        if args.autoscale:
            self.autoscale = Autoscale(
                "autoscale",
                AutoscaleArgs(
                    **where,
                    plan_id=self.plan.id,
                    min_count=args.instance_count,
                    max_count=args.autoscale_max_count,
                    scale_out_cpu=args.cpu_scale_out_threshold,
                    scale_in_cpu=args.cpu_scale_in_threshold,
                    notify_emails=args.alert_emails,
                    tags=tags,
                ),
                moved,
            )

        self.secrets = Secrets(
            "secrets",
            SecretsArgs(
                **where,
                handle_keys=args.handle_keys,
                request_state_keys=args.request_state_keys,
                purge_protection=args.key_vault_purge_protection,
                tags=tags,
                private_network_only=args.private_networking,
            ),
            moved,
        )

        self.network = None
        subnet_id = None
        if args.private_networking:
            self.network = Network("network", NetworkArgs(**where, tags=tags), pulumi.ResourceOptions(parent=self))
            vault = self.network.private_endpoint("vault", self.secrets.vault_id, KEY_VAULT_GROUP, KEY_VAULT_ZONE)
            # Through the vault endpoint's DNS zone group, so site and slot join the network once the vault's
            # name resolves to its private address there: joining changes their config, which makes App Service
            # resolve the Key Vault references again, now through the network.
            subnet_id = pulumi.Output.all(self.network.integration_subnet_id, vault.ready).apply(lambda ids: ids[0])

        self.monitoring = Monitoring(
            "monitoring",
            MonitoringArgs(
                **where,
                plan_id=self.plan.id,
                autoscale_setting_id=self.autoscale.id if self.autoscale else None,
                workbook_name=workbook_name(args.project, args.stack),
                workbook_display_name=f"MCP fleet ({args.project}/{args.stack})",
                tags=tags,
            ),
            moved,
        )

        self.site = Site(
            "mcp",
            SiteArgs(
                **where,
                plan_id=self.plan.id,
                app=AppConfig(
                    python_version=args.python_version,
                    workers=args.workers_per_instance,
                    key_vault_settings=self.secrets.app_settings,
                    app_insights_connection_string=self.monitoring.connection_string,
                    allowed_origins=args.allowed_origins,
                    auth_scopes=args.easy_auth.scopes if args.easy_auth else (),
                    tool_roles=args.tool_roles,
                ),
                easy_auth=args.easy_auth,
                grants=[self.secrets.reader, self.monitoring.publisher],
                tags=tags,
                subnet_id=subnet_id,
            ),
            moved,
        )

        self.slot = None
        if args.staging_slot:
            self.slot = StagingSlot("staging", StagingSlotArgs(site=self.site, tags=tags), moved)

        self.operations = Operations(
            "operations",
            OperationsArgs(
                resource_group_name=group,
                workspace_id=self.monitoring.workspace_id,
                site_id=self.site.id,
                slot_id=self.slot.id if self.slot else None,
                plan_id=self.plan.id,
                easy_auth=args.easy_auth is not None,
                instance_count=args.instance_count,
                autoscale_setting_id=self.autoscale.id if self.autoscale else None,
                autoscale_max_count=args.autoscale_max_count,
                cpu_scale_out_threshold=args.cpu_scale_out_threshold,
                alert_emails=args.alert_emails,
                tags=tags,
            ),
            moved,
        )

        self.delivery = Delivery(
            "delivery",
            DeliveryArgs(
                site_id=self.site.id,
                # The deploy commands run in the program's folder and find the package by its relative path
                # there: this project's root for __main__.py, its own folder for another program.
                package=build_package(source=args.server.folder, server=args.server.spec, working_dir=Path.cwd()),
                staging_slot=self.slot.slot_name if self.slot else None,
                swap=args.swap,
                key_vault_settings=tuple(self.secrets.app_settings),
                production_url=self.site.url,
                # Logs flow before the first deploy, so its Oryx build shows in the console logs.
                depends_on=[self.site, *([self.slot] if self.slot else []), *self.operations.log_settings],
            ),
            moved,
        )

        self.resource_group_name = group
        self.plan_id = self.plan.id
        self.site_name = self.site.name
        self.site_url = self.site.url
        self.mcp_url = pulumi.Output.concat(self.site.url, "/mcp")
        self.staging_mcp_url = pulumi.Output.concat(self.slot.url, "/mcp") if self.slot else None
        self.package_sha256 = self.delivery.package_sha256
        self.app_insights_name = self.monitoring.app_insights_name
        self.workbook_id = self.monitoring.workbook_id
        self.vault_name = self.secrets.vault_name
        self.autoscale_range = f"{args.instance_count}..{args.autoscale_max_count}" if args.autoscale else "off"
        self.register_outputs(
            {
                "resourceGroup": self.resource_group_name,
                "planId": self.plan_id,
                "siteName": self.site_name,
                "siteUrl": self.site_url,
                "mcpUrl": self.mcp_url,
                "stagingMcpUrl": self.staging_mcp_url,
                "packageSha256": self.package_sha256,
                "appInsightsName": self.app_insights_name,
                "workbookId": self.workbook_id,
                "vaultName": self.vault_name,
                "autoscaleRange": self.autoscale_range,
            }
        )
