"""Network: the integration subnet site and slot join, private endpoints with their DNS, and privateNetworking."""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest

from components.network import Network, NetworkArgs
from components.settings import ConfigError
from tests.infra.builders import TAGS, VAULT_ID
from tests.infra.conftest import mocked_stack
from tests.infra.test_azure_schemas import SCHEMAS

VNET = "azure-native:network:VirtualNetwork"
SUBNET = "azure-native:network:Subnet"
ENDPOINT = "azure-native:network:PrivateEndpoint"
ZONE_GROUP = "azure-native:network:PrivateDnsZoneGroup"
ZONE = "azure-native:privatedns:PrivateZone"
LINK = "azure-native:privatedns:VirtualNetworkLink"
NETWORK_TYPES = {VNET, SUBNET, ENDPOINT, ZONE_GROUP, ZONE, LINK}
WEBAPP = "azure-native:web:WebApp"
SLOT = "azure-native:web:WebAppSlot"
VAULT = "azure-native:keyvault:Vault"
REDIS_ID = "/subscriptions/s/resourceGroups/rg-mcp/providers/Microsoft.Cache/redisEnterprise/redis1"


def run_network(infra, endpoints=()):
    """A Network in rg-mcp with ``endpoints``: (name, resource id, group id, zone) each."""

    def program():
        network = Network("network", NetworkArgs(resource_group_name="rg-mcp", location="westeurope", tags=TAGS))
        for endpoint in endpoints:
            network.private_endpoint(*endpoint)

    return infra.run(program)


def subnets(run):
    return {s.get("subnetName"): s for s in run.of_type(SUBNET)}


def test_the_network_has_a_dedicated_integration_subnet_and_a_private_endpoint_subnet(infra):
    run = run_network(infra)
    vnet = run.one(VNET)
    assert vnet.inputs == {
        "resourceGroupName": "rg-mcp",
        "location": "westeurope",
        "addressSpace": {"addressPrefixes": ["10.0.0.0/24"]},
        "tags": {**TAGS, "component": "network"},
        # The SDK's defaults.
        "enableDdosProtection": False,
        "enableVmProtection": False,
    }
    by_name = subnets(run)
    assert set(by_name) == {"app-integration", "private-endpoints"}
    integration, endpoints = by_name["app-integration"], by_name["private-endpoints"]
    # Learn's recommended /26, delegated to App Service plans and to nothing else.
    assert integration.get("addressPrefix") == "10.0.0.0/26"
    assert integration.get("delegations") == [{"name": "app-service", "serviceName": "Microsoft.Web/serverFarms"}]
    assert endpoints.get("addressPrefix") == "10.0.0.64/27"
    assert "delegations" not in endpoints.inputs
    for subnet in (integration, endpoints):
        assert subnet.get("virtualNetworkName") == vnet.outputs["name"]
        assert vnet.urn in subnet.dependencies
    # Azure runs one subnet operation at a time on a network.
    assert integration.urn in endpoints.dependencies


def test_a_private_endpoint_sits_in_the_endpoint_subnet_and_publishes_its_address_in_the_linked_zone(infra):
    run = run_network(infra, [("vault", VAULT_ID, "vault", "privatelink.vaultcore.azure.net")])
    endpoint, group, zone, link = run.one(ENDPOINT), run.one(ZONE_GROUP), run.one(ZONE), run.one(LINK)
    assert endpoint.get("subnet.id") == subnets(run)["private-endpoints"].outputs["id"]
    assert endpoint.get("privateLinkServiceConnections") == [
        {"name": "vault", "privateLinkServiceId": VAULT_ID, "groupIds": ["vault"]}
    ]
    assert endpoint.get("location") == "westeurope"
    assert zone.inputs == {
        "resourceGroupName": "rg-mcp",
        "privateZoneName": "privatelink.vaultcore.azure.net",
        "location": "Global",
        "tags": {**TAGS, "component": "network"},
    }
    assert link.get("privateZoneName") == zone.outputs["name"]
    assert link.get("virtualNetwork") == {"id": run.one(VNET).outputs["id"]}
    assert link.get("registrationEnabled") is False
    assert link.get("location") == "Global"
    assert group.get("privateEndpointName") == endpoint.outputs["name"]
    assert group.get("privateDnsZoneConfigs") == [
        {"name": "privatelink-vaultcore-azure-net", "privateDnsZoneId": zone.outputs["id"]}
    ]
    # The zone group waits for the link too: until then the zone's records resolve nowhere in the network.
    assert {zone.urn, link.urn} <= group.dependencies


def test_endpoints_of_one_service_share_its_zone_and_another_service_gets_its_own(infra):
    run = run_network(
        infra,
        [
            ("vault", VAULT_ID, "vault", "privatelink.vaultcore.azure.net"),
            ("vault2", VAULT_ID.replace("kv1", "kv2"), "vault", "privatelink.vaultcore.azure.net"),
            ("redis", REDIS_ID, "redisEnterprise", "privatelink.redis.azure.net"),
        ],
    )
    assert sorted(z.get("privateZoneName") for z in run.of_type(ZONE)) == [
        "privatelink.redis.azure.net",
        "privatelink.vaultcore.azure.net",
    ]
    assert len(run.of_type(LINK)) == 2
    zone_ids = {z.get("privateZoneName"): z.outputs["id"] for z in run.of_type(ZONE)}
    groups = {g.name: g.get("privateDnsZoneConfigs.0.privateDnsZoneId") for g in run.of_type(ZONE_GROUP)}
    assert groups == {
        "network-vault-dns": zone_ids["privatelink.vaultcore.azure.net"],
        "network-vault2-dns": zone_ids["privatelink.vaultcore.azure.net"],
        "network-redis-dns": zone_ids["privatelink.redis.azure.net"],
    }
    (redis,) = [e for e in run.of_type(ENDPOINT) if e.name == "network-redis-pe"]
    assert redis.get("privateLinkServiceConnections.0.groupIds") == ["redisEnterprise"]


def test_everything_is_a_child_of_the_network_component(infra):
    run = run_network(infra, [("vault", VAULT_ID, "vault", "privatelink.vaultcore.azure.net")])
    component = run.one("mcpscale:azure:Network")
    assert sorted(r.type for r in run.children_of(component)) == sorted(
        [VNET, SUBNET, SUBNET, ENDPOINT, ZONE_GROUP, ZONE, LINK]
    )
    assert len(run.resources) == 8


# --------------------------------------------------------------------------
# privateNetworking in the whole program


@pytest.fixture(scope="module")
def prod():
    """The program with Pulumi.prod.yaml, run once for the tests that only read it."""
    with mocked_stack() as harness:
        return harness.run_main(harness.stack_config("prod"))


def test_prod_puts_site_and_slot_in_the_integration_subnet_routing_all_outbound_traffic_there(prod):
    integration = subnets(prod)["app-integration"].outputs["id"]
    for app in (prod.one(WEBAPP), prod.one(SLOT)):
        assert app.get("virtualNetworkSubnetId") == integration, app.name
        assert app.get("outboundVnetRouting") == {"allTraffic": True}, app.name
        # Joining the network waits until the vault's name resolves to its private endpoint there.
        assert prod.one(ZONE_GROUP).urn in app.dependencies, app.name


def test_prod_reaches_the_vault_through_its_private_endpoint_only(prod):
    vault = prod.one(VAULT)
    assert vault.get("properties.publicNetworkAccess") == "disabled"
    assert vault.get("properties.networkAcls") == {"defaultAction": "Deny", "bypass": "None"}
    endpoint = prod.one(ENDPOINT)
    assert endpoint.get("privateLinkServiceConnections") == [
        {"name": "vault", "privateLinkServiceId": vault.outputs["id"], "groupIds": ["vault"]}
    ]
    assert prod.one(ZONE).get("privateZoneName") == "privatelink.vaultcore.azure.net"


def test_the_integration_subnet_holds_no_private_endpoint(prod):
    integration = subnets(prod)["app-integration"].outputs["id"]
    assert [e.name for e in prod.of_type(ENDPOINT) if e.get("subnet.id") == integration] == []


def test_prod_keeps_app_insights_ingestion_public(prod):
    # Telemetry leaves through the network to the public ingestion endpoint; nothing closes that endpoint.
    component = prod.one("azure-native:applicationinsights:Component")
    assert component.get("publicNetworkAccessForIngestion", "Enabled") == "Enabled"


@pytest.mark.parametrize("stack", ["dev", "prod without the key"])
def test_without_private_networking_nothing_of_it_is_created(infra, stack):
    if stack == "dev":
        config = infra.stack_config("dev")
        assert config["mcpscale-azure:privateNetworking"] is False
    else:
        config = {k: v for k, v in infra.stack_config("prod").items() if k != "mcpscale-azure:privateNetworking"}
    run = infra.run_main(config)
    assert NETWORK_TYPES.isdisjoint(run.types())
    assert run.of_type("mcpscale:azure:Network") == []
    site = run.one(WEBAPP)
    assert "virtualNetworkSubnetId" not in site.inputs and "outboundVnetRouting" not in site.inputs
    assert run.one(VAULT).get("properties.publicNetworkAccess") == "enabled"


def test_a_private_networking_value_that_is_not_a_boolean_is_refused_before_anything_registers(infra):
    with pytest.raises(ConfigError) as raised:
        infra.run_main({**infra.stack_config("prod"), "privateNetworking": "on"})
    assert raised.value.problems == ["mcpscale-azure:privateNetworking = 'on' is not allowed: expected true or false"]
    assert infra.last.resources == []


# --------------------------------------------------------------------------
# The site's and slot's network members against their Azure shape


def site_network_validator() -> jsonschema.Draft7Validator:
    schema = json.loads((SCHEMAS / "sites-network_2025-05-01.schema.json").read_text())
    return jsonschema.Draft7Validator({**schema, "$ref": "#/definitions/SiteNetworkProperties"})


def network_members(app) -> dict:
    return {k: v for k, v in app.inputs.items() if k in ("virtualNetworkSubnetId", "outboundVnetRouting")}


def test_the_site_and_slot_network_members_match_their_azure_shape(prod):
    validator = site_network_validator()
    for app in (prod.one(WEBAPP), prod.one(SLOT)):
        body = network_members(app)
        assert set(body) == {"virtualNetworkSubnetId", "outboundVnetRouting"}
        assert not [e.message for e in validator.iter_errors(body)], app.name


@pytest.mark.parametrize(
    ("member", "value"),
    [("outboundVnetRouting", {"allTraffics": True}), ("outboundVnetRouting", {"allTraffic": "true"})],
)
def test_the_site_network_shape_rejects_a_wrong_value_or_wire_name(prod, member, value):
    body = copy.deepcopy(network_members(prod.one(WEBAPP)))
    body[member] = value
    assert list(site_network_validator().iter_errors(body))
