"""Private networking: a virtual network the site and slot send their outbound traffic into, and private endpoints.

The site and slot join the integration subnet by regional virtual network
integration (``virtualNetworkSubnetId``), which needs a Basic plan or better
(every sku this project allows). Learn asks for a dedicated subnet delegated
to ``Microsoft.Web/serverFarms`` that no other plan or resource uses, and
recommends a /26 so scaling (which briefly doubles the addresses in use) has
room ("Integrate your app with an Azure virtual network", Subnet
requirements): so the integration subnet holds nothing else, and private
endpoints get their own subnet.

A private endpoint gives a resource (the Key Vault, Azure Managed Redis) an
address in the endpoint subnet; its DNS zone group writes the A record into
the ``privatelink.*`` private DNS zone linked to the network, so
the resource's public name resolves to that address from inside the network.
Apps using the network's Azure-provided DNS resolve through linked zones
without further settings (Learn: same article, "Azure DNS private zones").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
from pulumi_azure_native import network, privatedns

# The delegation regional virtual network integration requires on its subnet.
APP_SERVICE_DELEGATION = "Microsoft.Web/serverFarms"

# Private-link groups and zones (Learn: "Azure Private Endpoint private DNS zone values"): a Key Vault's, and
# Azure Managed Redis's (Azure Cache for Redis Enterprise, the same resource type, uses another zone).
KEY_VAULT_GROUP = "vault"
KEY_VAULT_ZONE = "privatelink.vaultcore.azure.net"
REDIS_GROUP = "redisEnterprise"
REDIS_ZONE = "privatelink.redis.azure.net"

# Private DNS zones and their links are global resources.
GLOBAL = "Global"


@dataclass(frozen=True)
class NetworkArgs:
    resource_group_name: pulumi.Input[str]
    location: str
    tags: Mapping[str, str]
    address_space: str = "10.0.0.0/24"
    # /26: Learn's recommended size for the integration subnet (up to 29 instances while a scale-up doubles them).
    integration_prefix: str = "10.0.0.0/26"
    private_endpoint_prefix: str = "10.0.0.64/27"


@dataclass(frozen=True)
class PrivateEndpoint:
    """A private endpoint and the DNS zone group that publishes its address."""

    endpoint: network.PrivateEndpoint
    dns_zone_group: network.PrivateDnsZoneGroup

    @property
    def ready(self) -> pulumi.Output[str]:
        """The zone group's id: resolves once the endpoint's name resolves to its private address."""
        return self.dns_zone_group.id


class Network(pulumi.ComponentResource):
    """A virtual network with a dedicated integration subnet, a private endpoint subnet and private DNS zones."""

    vnet_id: pulumi.Output[str]
    integration_subnet_id: pulumi.Output[str]
    """The subnet the site and slot integrate with; nothing else is placed there."""
    private_endpoint_subnet_id: pulumi.Output[str]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mcpscale:azure:Network", name, None, opts)
        self._name = name
        self._args = args
        self._tags = {**args.tags, "component": "network"}
        self._zones: dict[str, tuple[privatedns.PrivateZone, privatedns.VirtualNetworkLink]] = {}
        child = pulumi.ResourceOptions(parent=self)

        # Subnets are their own resources, not the network's `subnets` list: an update of the network that
        # omits `subnets` keeps the existing ones (azure-native reads them first, pulumi-azure-native#611; ARM
        # itself now preserves them too), so each subnet changes on its own.
        vnet = network.VirtualNetwork(
            f"{name}-vnet",
            resource_group_name=args.resource_group_name,
            location=args.location,
            address_space=network.AddressSpaceArgs(address_prefixes=[args.address_space]),
            tags=self._tags,
            opts=child,
        )
        integration = network.Subnet(
            f"{name}-integration",
            resource_group_name=args.resource_group_name,
            virtual_network_name=vnet.name,
            subnet_name="app-integration",
            address_prefix=args.integration_prefix,
            delegations=[network.DelegationArgs(name="app-service", service_name=APP_SERVICE_DELEGATION)],
            opts=child,
        )
        # One subnet operation at a time on a network: Azure refuses a second while the first is in progress.
        endpoints = network.Subnet(
            f"{name}-endpoints",
            resource_group_name=args.resource_group_name,
            virtual_network_name=vnet.name,
            subnet_name="private-endpoints",
            address_prefix=args.private_endpoint_prefix,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[integration]),
        )

        self.vnet_id = vnet.id
        self.integration_subnet_id = integration.id
        self.private_endpoint_subnet_id = endpoints.id
        self.register_outputs(
            {
                "vnetId": self.vnet_id,
                "integrationSubnetId": self.integration_subnet_id,
                "privateEndpointSubnetId": self.private_endpoint_subnet_id,
            }
        )

    def private_endpoint(
        self, name: str, resource_id: pulumi.Input[str], group_id: str, dns_zone: str
    ) -> PrivateEndpoint:
        """A private endpoint for ``resource_id``'s ``group_id`` in the endpoint subnet, published in ``dns_zone``.

        The zone (and its link to this network) is created with the first
        endpoint that names it, so endpoints of one service share it.
        """
        child = pulumi.ResourceOptions(parent=self)
        endpoint = network.PrivateEndpoint(
            f"{self._name}-{name}-pe",
            resource_group_name=self._args.resource_group_name,
            location=self._args.location,
            subnet=network.SubnetArgs(id=self.private_endpoint_subnet_id),
            private_link_service_connections=[
                network.PrivateLinkServiceConnectionArgs(
                    name=name, private_link_service_id=resource_id, group_ids=[group_id]
                )
            ],
            tags=self._tags,
            opts=child,
        )
        zone_group = network.PrivateDnsZoneGroup(
            f"{self._name}-{name}-dns",
            resource_group_name=self._args.resource_group_name,
            private_endpoint_name=endpoint.name,
            private_dns_zone_group_name="default",
            private_dns_zone_configs=[
                network.PrivateDnsZoneConfigArgs(
                    name=dns_zone.replace(".", "-"), private_dns_zone_id=self._zone(dns_zone)
                )
            ],
            opts=child,
        )
        return PrivateEndpoint(endpoint, zone_group)

    def _zone(self, dns_zone: str) -> pulumi.Output[str]:
        """The id of ``dns_zone``, linked to this network; through the link, so a zone group waits for both."""
        if dns_zone not in self._zones:
            child = pulumi.ResourceOptions(parent=self)
            zone = privatedns.PrivateZone(
                f"{self._name}-{dns_zone}",
                resource_group_name=self._args.resource_group_name,
                private_zone_name=dns_zone,
                location=GLOBAL,
                tags=self._tags,
                opts=child,
            )
            link = privatedns.VirtualNetworkLink(
                f"{self._name}-{dns_zone}-link",
                resource_group_name=self._args.resource_group_name,
                private_zone_name=zone.name,
                location=GLOBAL,
                virtual_network=privatedns.SubResourceArgs(id=self.vnet_id),
                # Only private-endpoint records live here; nothing registers itself.
                registration_enabled=False,
                tags=self._tags,
                opts=child,
            )
            self._zones[dns_zone] = (zone, link)
        zone, link = self._zones[dns_zone]
        return pulumi.Output.all(zone.id, link.id).apply(lambda ids: ids[0])
