"""The rate limits' shared counters: an Azure Managed Redis cluster and its one database, Entra ID only.

Created only when the stack sets ``rateLimits`` (app/ratelimit/: the app
leases tokens from fixed-window counters here, so every instance and worker
enforces the same limit). The choices, each for a reason:

- Azure Managed Redis (``Microsoft.Cache/redisEnterprise`` with a Balanced,
  MemoryOptimized, ComputeOptimized or FlashOptimized sku; the Enterprise
  skus are the older Azure Cache for Redis Enterprise offer). The counters
  are a few bytes per caller and window, so the smallest sku is the default.
- ``EnterpriseCluster`` clustering: the app's client is a plain Redis client,
  not cluster-aware, and under ``OSSCluster`` (the API's default) it would be
  redirected to shards it cannot follow; the enterprise policy serves the whole
  keyspace at one endpoint over the classic protocol (the spec's
  ``clusteringPolicy`` values). It cannot be changed later without deleting
  the database, so it is set from the first deployment. The app's lease
  script touches one key, as a script must under a clustering policy (all
  its keys in one hash slot).
- TLS only (``clientProtocol: Encrypted``, TLS 1.2 at least) and access keys
  off: the app signs in with its managed identity (redis-entraid), and each
  identity needs an access policy assignment on the database, which
  :attr:`RateLimitStore.data_access` grants the site's and slot's identities
  like their RBAC roles (components/roles.py), one at a time. Only the
  ``default`` access policy exists for assignments in this API version (its
  spec says so).
- ``NoEviction``: a counter evicted before its window ends would silently
  admit that window's calls again; with no eviction a full cache refuses
  writes, which the app sees as Redis unavailable (it limits locally, logs
  it, and marks its spans) instead of over-admitting unseen.
- No persistence: a counter lives two windows at most; a restarted cache
  starts every window afresh, as the app does when Redis is unreachable.
- Port :data:`REDIS_PORT`, set explicitly, so the URL the app gets is the
  database's by construction (Azure Managed Redis listens on 10000).

With private networking the cluster refuses public traffic and the app
reaches it through a private endpoint, which the fleet adds to its network
(components/network.py, ``REDIS_GROUP`` and ``REDIS_ZONE``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
from pulumi_azure_native import redisenterprise

REDIS_PORT = 10000
DATABASE_NAME = "default"
"""Azure Managed Redis runs one database per cluster, named ``default``."""
ACCESS_POLICY = "default"
"""The one access policy an assignment may name in this API version: full data access."""

# Azure Managed Redis skus, as the API version the SDK uses lists them (the SDK's enum is the spec's).
REDIS_SKUS = tuple(sku.value for sku in redisenterprise.SkuName if not sku.value.startswith("Enterprise"))
DEFAULT_REDIS_SKU = "Balanced_B0"


@dataclass(frozen=True)
class RateLimitStoreArgs:
    resource_group_name: pulumi.Input[str]
    location: str
    tags: Mapping[str, str]
    sku: str = DEFAULT_REDIS_SKU
    private_network_only: bool = False
    """Refuse public network access; the fleet adds the private endpoint."""


@dataclass(frozen=True)
class RedisDataAccess:
    """Data access to the store's database, for an identity to hold: an access policy assignment (a Grant)."""

    label: str
    resource_group_name: pulumi.Input[str]
    cluster_name: pulumi.Input[str]
    database: redisenterprise.Database
    assignments: list[redisenterprise.AccessPolicyAssignment] = field(default_factory=list, compare=False)
    """Made so far, in order: each waits for the one before (see :meth:`assign_to`)."""

    def assign_to(
        self, name: str, principal_id: pulumi.Input[str], opts: pulumi.ResourceOptions
    ) -> redisenterprise.AccessPolicyAssignment:
        assignment = redisenterprise.AccessPolicyAssignment(
            f"{name}-{self.label}",
            resource_group_name=self.resource_group_name,
            cluster_name=self.cluster_name,
            database_name=DATABASE_NAME,
            # Letters and digits only (the spec's pattern); named after the identity, so a replaced identity
            # gets a new assignment and the old one goes.
            access_policy_assignment_name=pulumi.Output.from_input(principal_id).apply(
                lambda principal: principal.replace("-", "")
            ),
            access_policy_name=ACCESS_POLICY,
            user=redisenterprise.AccessPolicyAssignmentPropertiesUserArgs(object_id=principal_id),
            # One at a time on a cache: two assignments written in parallel can leave one Failed (two apps
            # granted at once, microsoft/aspire#13043), and Terraform's provider locks the cache for each
            # (hashicorp/terraform-provider-azurerm#30980). So the slot's waits for the site's.
            opts=pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(depends_on=[self.database, *self.assignments[-1:]])
            ),
        )
        self.assignments.append(assignment)
        return assignment


class RateLimitStore(pulumi.ComponentResource):
    """An Azure Managed Redis cluster with one TLS-only, Entra-only, non-evicting database for the counters."""

    id: pulumi.Output[str]
    """The cluster's resource id (what a private endpoint connects to)."""
    host_name: pulumi.Output[str]
    url: pulumi.Output[str]
    """``rediss://<host>:10000``, the app's ``MCP_REDIS_URL`` (no password: the app signs in with its identity)."""
    data_access: RedisDataAccess
    """The grant the site and slot turn into access policy assignments for their identities."""

    def __init__(self, name: str, args: RateLimitStoreArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mcpscale:azure:RateLimitStore", name, None, opts)
        if args.sku not in REDIS_SKUS:
            raise ValueError(f"sku {args.sku!r} is not an Azure Managed Redis sku; expected one of {REDIS_SKUS}")
        child = pulumi.ResourceOptions(parent=self)
        public = redisenterprise.PublicNetworkAccess
        cluster = redisenterprise.RedisEnterprise(
            f"{name}-redis",
            resource_group_name=args.resource_group_name,
            location=args.location,
            sku=redisenterprise.SkuArgs(name=args.sku),
            minimum_tls_version=redisenterprise.TlsVersion.TLS_VERSION_1_2,
            high_availability=redisenterprise.HighAvailability.ENABLED,
            public_network_access=public.DISABLED if args.private_network_only else public.ENABLED,
            tags={**args.tags, "component": "rate-limits"},
            opts=child,
        )
        database = redisenterprise.Database(
            f"{name}-db",
            resource_group_name=args.resource_group_name,
            cluster_name=cluster.name,
            database_name=DATABASE_NAME,
            client_protocol=redisenterprise.Protocol.ENCRYPTED,
            port=REDIS_PORT,
            clustering_policy=redisenterprise.ClusteringPolicy.ENTERPRISE_CLUSTER,
            eviction_policy=redisenterprise.EvictionPolicy.NO_EVICTION,
            access_keys_authentication=redisenterprise.AccessKeysAuthentication.DISABLED,
            opts=child,
        )

        self.id = cluster.id
        self.host_name = cluster.host_name
        self.url = pulumi.Output.concat("rediss://", cluster.host_name, f":{REDIS_PORT}")
        self.data_access = RedisDataAccess("redis-data", args.resource_group_name, cluster.name, database)
        self.register_outputs({"id": self.id, "hostName": self.host_name, "url": self.url})
