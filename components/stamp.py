"""One region's stamp: everything that serves MCP in a region, built once per region the fleet lists.

A stamp is the plan and its autoscale, the region's own Key Vault holding the
fleet's key rings, the optional private network, the production site and the
staging slot, and their operations (platform logs to the fleet's workspace,
alerts). Every region has the same stamp, so any region can answer any
request: the protocol is stateless and the rings are the same everywhere.
What the regions share (resource group, telemetry, Front Door, code delivery)
is the fleet's (components/fleet.py).

Names: the primary region's stamp gives its children the names a stack of
one region has always had (``plan``, ``mcp``, ``secrets``, ...), and aliases
them to where they were before stamps existed (directly under the fleet, and
before that at the stack's root), so an existing stack keeps every resource
and adding a region replaces none. Every other region's children carry the
region in their names (``plan-northeurope``); its vault, whose name Azure
caps at 24 characters, is named from a short hash of the region.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pulumi

from components.autoscale import Autoscale, AutoscaleArgs
from components.network import KEY_VAULT_GROUP, KEY_VAULT_ZONE, REDIS_GROUP, REDIS_ZONE, Network, NetworkArgs
from components.operations import Operations, OperationsArgs
from components.plan import Plan, PlanArgs
from components.rate_limit_store import RateLimitStore
from components.roles import RoleGrant
from components.secrets import Secrets, SecretsArgs
from components.site import Site, SiteArgs
from components.site_config import AppConfig, RateLimiting
from components.staging_slot import StagingSlot, StagingSlotArgs
from components.workbook import StampCharts

if TYPE_CHECKING:
    from components.fleet import McpFleetArgs

TYPE = "mcpscale:azure:RegionStamp"


@dataclass(frozen=True)
class RegionStampArgs:
    region: str
    primary: bool
    """The primary keeps the names of a single-region stack (see the module docstring)."""
    settings: McpFleetArgs
    """What the platform team chose; every stamp is built from the same."""
    resource_group_name: pulumi.Input[str]
    key_rings: Mapping[str, pulumi.Input[str]]
    """App setting -> ring (components/secrets.py key_rings), the same for every region."""
    app_insights_connection_string: pulumi.Input[str]
    telemetry_publisher: RoleGrant
    workspace_id: pulumi.Input[str]
    front_door_id: pulumi.Input[str] | None = None
    """The fleet's Front Door profile's ``frontDoorId``: site and slot then admit only its traffic."""
    rate_limiting: RateLimiting | None = None
    """The fleet's rate limits and the Redis that shares their counters; None: no limits."""
    rate_limit_store: RateLimitStore | None = None
    """That Redis: this region's site and slot get data access to it, and a private endpoint with the network."""
    previous_plan_id: pulumi.Input[str | None] | None = None
    """The primary's plan id from the last deployment (components/plan.py), for autoscale's capacity."""
    moved_from: Sequence[pulumi.Alias] = ()
    """Where the primary's children were registered before stamps existed."""


def stamp_name(base: str, region: str, primary: bool) -> str:
    """A stamp child's logical name: ``base`` in the primary region, ``base-<region>`` in any other."""
    return base if primary else f"{base}-{region}"


class RegionStamp(pulumi.ComponentResource):
    region: str
    plan: Plan
    autoscale: Autoscale | None
    secrets: Secrets
    network: Network | None
    site: Site
    slot: StagingSlot | None
    operations: Operations
    charts: pulumi.Output[StampCharts]
    """What the fleet workbook reads of this stamp."""

    def __init__(self, name: str, args: RegionStampArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        settings, region = args.settings, args.region
        child = pulumi.ResourceOptions(parent=self, aliases=list(args.moved_from))
        tags = settings.tags
        where = {"resource_group_name": args.resource_group_name, "location": region}

        def named(base: str) -> str:
            return stamp_name(base, region, args.primary)

        self.region = region
        self.plan = Plan(
            named("plan"),
            PlanArgs(
                **where,
                sku=settings.sku,
                instance_count=settings.instance_count,
                autoscale=settings.autoscale,
                zone_redundant=settings.zone_redundant,
                previous_plan_id=args.previous_plan_id if settings.autoscale else None,
                tags=tags,
            ),
            child,
        )

        self.autoscale = None
        if settings.autoscale:
            self.autoscale = Autoscale(
                named("autoscale"),
                AutoscaleArgs(
                    **where,
                    plan_id=self.plan.id,
                    min_count=settings.instance_count,
                    max_count=settings.autoscale_max_count,
                    scale_out_cpu=settings.cpu_scale_out_threshold,
                    scale_in_cpu=settings.cpu_scale_in_threshold,
                    notify_emails=settings.alert_emails,
                    tags=tags,
                ),
                child,
            )

        rings = dict(args.key_rings)
        self.secrets = Secrets(
            named("secrets"),
            SecretsArgs(
                **where,
                handle_keys=rings["MCP_HANDLE_KEYS"],
                request_state_keys=rings["MCP_REQUEST_STATE_KEYS"],
                purge_protection=settings.key_vault_purge_protection,
                tags=tags,
                private_network_only=settings.private_networking,
                vault_label=None if args.primary else f"kv{zlib.crc32(region.encode()):08x}",
            ),
            child,
        )

        self.network = None
        subnet_id = None
        if settings.private_networking:
            self.network = Network(named("network"), NetworkArgs(**where, tags=tags), child)
            vault = self.network.private_endpoint("vault", self.secrets.vault_id, KEY_VAULT_GROUP, KEY_VAULT_ZONE)
            # Through the vault endpoint's DNS zone group, so site and slot join the network once the vault's
            # name resolves to its private address there: joining changes their config, which makes App Service
            # resolve the Key Vault references again, now through the network.
            subnet_id = pulumi.Output.all(self.network.integration_subnet_id, vault.ready).apply(lambda ids: ids[0])
            if args.rate_limit_store is not None:
                # A private endpoint may reach a resource in another region, so each region's network has its own.
                self.network.private_endpoint("redis", args.rate_limit_store.id, REDIS_GROUP, REDIS_ZONE)

        self.site = Site(
            named("mcp"),
            SiteArgs(
                **where,
                plan_id=self.plan.id,
                app=AppConfig(
                    python_version=settings.python_version,
                    workers=settings.workers_per_instance,
                    key_vault_settings=self.secrets.app_settings,
                    app_insights_connection_string=args.app_insights_connection_string,
                    allowed_origins=settings.allowed_origins,
                    auth_scopes=settings.easy_auth.scopes if settings.easy_auth else (),
                    tool_roles=settings.tool_roles,
                    region=region,
                    front_door_id=args.front_door_id,
                    rate_limiting=args.rate_limiting,
                ),
                easy_auth=settings.easy_auth,
                grants=[
                    self.secrets.reader,
                    args.telemetry_publisher,
                    *([args.rate_limit_store.data_access] if args.rate_limit_store else []),
                ],
                tags=tags,
                subnet_id=subnet_id,
            ),
            child,
        )

        self.slot = None
        if settings.staging_slot:
            self.slot = StagingSlot(named("staging"), StagingSlotArgs(site=self.site, tags=tags), child)

        self.operations = Operations(
            named("operations"),
            OperationsArgs(
                resource_group_name=args.resource_group_name,
                workspace_id=args.workspace_id,
                site_id=self.site.id,
                slot_id=self.slot.id if self.slot else None,
                plan_id=self.plan.id,
                easy_auth=settings.easy_auth is not None,
                instance_count=settings.instance_count,
                autoscale_setting_id=self.autoscale.id if self.autoscale else None,
                autoscale_max_count=settings.autoscale_max_count,
                cpu_scale_out_threshold=settings.cpu_scale_out_threshold,
                alert_emails=settings.alert_emails,
                tags=tags,
            ),
            child,
        )

        self.charts = pulumi.Output.all(
            self.plan.id, self.site.id, self.autoscale.id if self.autoscale else None
        ).apply(lambda ids: StampCharts(region, *ids))
        self.register_outputs(
            {"region": region, "planId": self.plan.id, "siteName": self.site.name, "siteUrl": self.site.url}
        )
