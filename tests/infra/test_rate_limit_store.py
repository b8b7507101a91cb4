"""Rate limits in the stack: Azure Managed Redis for the counters, data access for site and slot, their settings."""

from __future__ import annotations

import json

import pytest

from components.network import REDIS_GROUP, REDIS_ZONE
from components.rate_limit_store import REDIS_SKUS, RateLimitStore, RateLimitStoreArgs
from tests.infra.builders import TAGS
from tests.infra.conftest import SITE_PRINCIPAL, SLOT_PRINCIPAL

CLUSTER = "azure-native:redisenterprise:RedisEnterprise"
DATABASE = "azure-native:redisenterprise:Database"
ASSIGNMENT = "azure-native:redisenterprise:AccessPolicyAssignment"
ENDPOINT = "azure-native:network:PrivateEndpoint"
ZONE = "azure-native:privatedns:PrivateZone"
SITE_SETTINGS = "azure-native:web:WebAppApplicationSettings"
SLOT_SETTINGS = "azure-native:web:WebAppApplicationSettingsSlot"
LIMITS = {"*": {"perCaller": "600/minute"}, "compute_primes": {"perCaller": " 10 / minute", "total": "1000/minute"}}


@pytest.fixture
def prod(infra):
    """The prod stack with rate limits (autoscale 3..10, staging slot, private networking)."""
    return infra.run_main({**infra.stack_config("prod"), "rateLimits": json.dumps(LIMITS)})


@pytest.fixture
def dev(infra):
    """The dev stack with rate limits (one Basic instance, no autoscale, no slot, no private networking)."""
    return infra.run_main({**infra.stack_config("dev"), "rateLimits": json.dumps(LIMITS)})


def all_settings(run) -> list[dict[str, str]]:
    return [r.get("properties") for r in (*run.of_type(SITE_SETTINGS), *run.of_type(SLOT_SETTINGS))]


def test_without_rate_limits_there_is_no_redis_and_no_limit_setting(infra):
    run = infra.run_main(infra.stack_config("prod"))
    assert not [r for r in run.resources if r.type.startswith("azure-native:redisenterprise:")]
    assert REDIS_ZONE not in {z.get("privateZoneName") for z in run.of_type(ZONE)}
    for settings in all_settings(run):
        assert not {k for k in settings if k.startswith(("MCP_RATE_LIMIT", "MCP_REDIS"))}


def test_the_counters_live_in_a_small_azure_managed_redis_with_tls_1_2_and_high_availability(dev):
    cluster = dev.one(CLUSTER)
    assert cluster.get("sku") == {"name": "Balanced_B0"}
    assert cluster.get("minimumTlsVersion") == "1.2"
    assert cluster.get("highAvailability") == "Enabled"
    assert cluster.get("publicNetworkAccess") == "Enabled"  # no network to reach it privately from
    assert cluster.get("tags") == {"project": "mcpscale-azure", "stack": "test", "component": "rate-limits"}


def test_its_database_serves_the_plain_client_over_tls_only_with_entra_id_only_and_never_evicts(dev):
    database = dev.one(DATABASE)
    assert database.inputs == {
        "resourceGroupName": dev.one(CLUSTER).get("resourceGroupName"),
        "clusterName": dev.one(CLUSTER).outputs["name"],
        "databaseName": "default",
        "clientProtocol": "Encrypted",
        "port": 10000,
        "clusteringPolicy": "EnterpriseCluster",
        "evictionPolicy": "NoEviction",
        "accessKeysAuthentication": "Disabled",
    }


def test_site_and_slot_identities_get_data_access_on_the_database(prod):
    database = prod.one(DATABASE)
    assignments = {a.get("user.objectId"): a for a in prod.of_type(ASSIGNMENT)}
    assert set(assignments) == {SITE_PRINCIPAL, SLOT_PRINCIPAL}
    for principal, assignment in assignments.items():
        assert assignment.get("accessPolicyName") == "default"
        assert assignment.get("databaseName") == "default"
        assert assignment.get("clusterName") == prod.one(CLUSTER).outputs["name"]
        assert assignment.get("accessPolicyAssignmentName") == principal.replace("-", "")
        assert database.urn in assignment.dependencies  # the database must exist before its access list


def test_site_and_slot_get_the_limits_the_redis_address_and_the_autoscale_maximum(prod):
    host = prod.one(CLUSTER).outputs["hostName"]
    assert host.endswith(".westeurope.redis.azure.net")
    assert len(all_settings(prod)) == 2  # the site's and the slot's
    for settings in all_settings(prod):
        assert json.loads(settings["MCP_RATE_LIMITS"]) == {
            "*": {"perCaller": "600/minute"},
            "compute_primes": {"perCaller": "10/minute", "total": "1000/minute"},
        }
        assert settings["MCP_REDIS_URL"] == f"rediss://{host}:10000"
        assert settings["MCP_RATE_LIMIT_INSTANCES"] == "10"  # autoscaleMaxCount, not instanceCount (3)
        assert "MCP_RATE_LIMITS_FAIL_CLOSED" not in settings


def test_without_autoscale_the_instances_sharing_the_limits_are_the_instance_count(dev):
    (settings,) = all_settings(dev)
    assert settings["MCP_RATE_LIMIT_INSTANCES"] == "1"


def test_fail_closed_reaches_site_and_slot(infra):
    config = {**infra.stack_config("prod"), "rateLimits": json.dumps(LIMITS), "rateLimitsFailClosed": True}
    run = infra.run_main(config)
    assert [s["MCP_RATE_LIMITS_FAIL_CLOSED"] for s in all_settings(run)] == ["true", "true"]


def test_the_assignments_are_written_one_at_a_time(prod):
    site, slot = (
        next(a for a in prod.of_type(ASSIGNMENT) if a.get("user.objectId") == p)
        for p in (SITE_PRINCIPAL, SLOT_PRINCIPAL)
    )
    assert site.urn in slot.dependencies


def test_each_identity_reads_its_redis_settings_only_once_it_holds_data_access(prod):
    assignments = {a.get("user.objectId"): a.urn for a in prod.of_type(ASSIGNMENT)}
    assert assignments[SITE_PRINCIPAL] in prod.one(SITE_SETTINGS).dependencies
    assert assignments[SLOT_PRINCIPAL] in prod.one(SLOT_SETTINGS).dependencies


def test_with_private_networking_redis_is_reached_only_through_its_private_endpoint(prod):
    assert prod.one(CLUSTER).get("publicNetworkAccess") == "Disabled"
    (endpoint,) = [
        e for e in prod.of_type(ENDPOINT) if e.get("privateLinkServiceConnections.0.groupIds") == [REDIS_GROUP]
    ]
    assert endpoint.get("privateLinkServiceConnections.0.privateLinkServiceId") == prod.one(CLUSTER).outputs["id"]
    assert REDIS_ZONE in {z.get("privateZoneName") for z in prod.of_type(ZONE)}


def test_the_redis_sku_key_picks_an_azure_managed_redis_sku(infra):
    run = infra.run_main({**infra.stack_config("dev"), "rateLimits": json.dumps(LIMITS), "redisSku": "Balanced_B5"})
    assert run.one(CLUSTER).get("sku.name") == "Balanced_B5"


def test_the_store_refuses_a_sku_that_is_not_azure_managed_redis(infra):
    assert "Enterprise_E10" not in REDIS_SKUS and "Balanced_B0" in REDIS_SKUS
    with pytest.raises(ValueError, match="Enterprise_E10"):
        infra.run(
            lambda: RateLimitStore(
                "limits",
                RateLimitStoreArgs(resource_group_name="rg", location="westeurope", tags=TAGS, sku="Enterprise_E10"),
            )
        )
