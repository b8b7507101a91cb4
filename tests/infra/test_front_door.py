"""Front Door as the fleet's entry (components/front_door.py) and the lock on its origins (front_door_lock.py).

Every payload is checked against the shape transcribed from Azure's REST
specs (tests/infra/schemas/README.md), converted to the ARM body the way
tests/infra/test_azure_schemas.py does: the request path's inputs dropped,
the resource-level fields at the top, the rest under ``properties``.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pulumi
import pytest
from pulumi_azure_native import web

from app.kernel import KEEPALIVE_S
from components import front_door as fd
from components.front_door import FrontDoor, FrontDoorArgs, FrontDoorOrigin
from components.front_door_lock import forward_proxy_http_settings, front_door_access
from tests.infra.builders import TAGS

SCHEMAS = Path(__file__).with_name("schemas")
WORKSPACE_ID = "/subscriptions/s/resourceGroups/rg-mcp/providers/Microsoft.OperationalInsights/workspaces/logs1"
FRONT_DOOR_ID = "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9"
ENDPOINT_HOST = "mcp-fd-endpoint-abcdef.z01.azurefd.net"
REGIONS = ("westeurope", "northeurope", "swedencentral")

PROFILE = "azure-native:cdn:Profile"
ENDPOINT = "azure-native:cdn:AFDEndpoint"
ORIGIN_GROUP = "azure-native:cdn:AFDOriginGroup"
ORIGIN = "azure-native:cdn:AFDOrigin"
ROUTE = "azure-native:cdn:Route"
SECURITY_POLICY = "azure-native:cdn:SecurityPolicy"
WAF_POLICY = "azure-native:frontdoor:Policy"
DIAGNOSTIC_SETTING = "azure-native:monitor:DiagnosticSetting"

# Resource type -> (schema file, definition, inputs that are the request path, inputs at the body's top level).
SHAPES = {
    PROFILE: ("afd_2025-06-01", "Profile", {"resourceGroupName", "profileName"}, {"location", "tags", "sku", "identity"}),
    ENDPOINT: ("afd_2025-06-01", "AFDEndpoint", {"resourceGroupName", "profileName", "endpointName"}, {"location", "tags"}),
    ORIGIN_GROUP: ("afd_2025-06-01", "AFDOriginGroup", {"resourceGroupName", "profileName", "originGroupName"}, set()),
    ORIGIN: (
        "afd_2025-06-01", "AFDOrigin", {"resourceGroupName", "profileName", "originGroupName", "originName"}, set()
    ),
    ROUTE: ("afd_2025-06-01", "Route", {"resourceGroupName", "profileName", "endpointName", "routeName"}, set()),
    SECURITY_POLICY: (
        "afd_2025-06-01", "SecurityPolicy", {"resourceGroupName", "profileName", "securityPolicyName"}, set()
    ),
    WAF_POLICY: (
        "frontdoorwaf_2025-11-01", "WebApplicationFirewallPolicy", {"resourceGroupName", "policyName"},
        {"location", "tags", "sku", "etag"},
    ),
    DIAGNOSTIC_SETTING: ("diagnosticsettings_2021-05-01-preview", "DiagnosticSettingsResource", {"resourceUri", "name"}, set()),
}  # fmt: skip


def arm_body(registration) -> dict[str, Any]:
    _, _, path, top = SHAPES[registration.type]
    inputs = {k: v for k, v in registration.inputs.items() if k not in path}
    body = {k: inputs.pop(k) for k in list(inputs) if k in top}
    if inputs:
        body["properties"] = inputs
    return body


def validator(schema: str, definition: str) -> jsonschema.Draft7Validator:
    document = json.loads((SCHEMAS / f"{schema}.schema.json").read_text())
    return jsonschema.Draft7Validator({**document, "$ref": f"#/definitions/{definition}"})


def shape_errors(registration) -> list[str]:
    schema, definition, _, _ = SHAPES[registration.type]
    return [error.message for error in validator(schema, definition).iter_errors(arm_body(registration))]


def computed(args) -> dict[str, Any]:
    """What Azure computes and the component reads: the profile's Front Door id, the endpoint's host name."""
    if args.typ == PROFILE:
        return {"frontDoorId": FRONT_DOOR_ID}
    if args.typ == ENDPOINT:
        return {"hostName": ENDPOINT_HOST}
    return {}


def front_door_args(regions: int = 2, premium: bool = False, **overrides: Any) -> FrontDoorArgs:
    origins = [FrontDoorOrigin(region, f"mcp-{region}.azurewebsites.net") for region in REGIONS[:regions]]
    return FrontDoorArgs(
        resource_group_name="rg-mcp",
        origins=origins,
        workspace_id=WORKSPACE_ID,
        tags=TAGS,
        premium=premium,
        **overrides,
    )


def deploy(infra, args: FrontDoorArgs):
    return infra.run(lambda: FrontDoor("fd", args), computed=computed)


@pytest.mark.parametrize("premium", [False, True], ids=["standard", "premium"])
@pytest.mark.parametrize("regions", [1, 2, 3])
def test_every_front_door_payload_matches_its_azure_shape(infra, regions, premium):
    run = deploy(infra, front_door_args(regions, premium))

    counts = {t: len(run.of_type(t)) for t in SHAPES}
    assert counts == {
        PROFILE: 1, ENDPOINT: 1, ORIGIN_GROUP: 1, ORIGIN: regions, ROUTE: 1, SECURITY_POLICY: 1, WAF_POLICY: 1,
        DIAGNOSTIC_SETTING: 1,
    }  # fmt: skip
    for registration in run.resources:
        if registration.type in SHAPES:
            assert not shape_errors(registration), (registration.type, registration.name, shape_errors(registration))


@pytest.mark.parametrize(
    ("resource_type", "path", "value"),
    [
        (PROFILE, "properties.originResponseTimeoutSeconds", 10),
        (PROFILE, "sku.name", "Standard_FrontDoor"),
        (ORIGIN_GROUP, "properties.healthProbeSettings.probeIntervalInSeconds", 300),
        (ORIGIN_GROUP, "properties.healthProbeSettings.probeProtocol", "HTTPS"),
        (ORIGIN_GROUP, "properties.sessionAffinityState", "Off"),
        (ORIGIN, "properties.priority", 6),
        (ORIGIN, "properties.weight", 0),
        (ORIGIN, "properties.originHostHeaders", "x"),
        (ROUTE, "properties.forwardingProtocol", "Https"),
        (SECURITY_POLICY, "properties.parameters.type", "Waf"),
        (WAF_POLICY, "properties.customRules.rules.0.matchConditions.0.operator", "Contain"),
        (WAF_POLICY, "properties.customRules.rules.1.rateLimitDurationInMinutes", 10),
        (WAF_POLICY, "sku.name", "Premium_FrontDoor"),
    ],
)  # fmt: skip
def test_the_shapes_reject_a_wrong_value_or_wire_name(infra, resource_type, path, value):
    body = arm_body(deploy(infra, front_door_args()).of_type(resource_type)[0])
    schema, definition, _, _ = SHAPES[resource_type]
    check = validator(schema, definition)
    assert not list(check.iter_errors(body))

    broken = copy.deepcopy(body)
    *parents, last = path.split(".")
    target = broken
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    target[last] = value
    assert list(check.iter_errors(broken)), path


def test_the_origin_response_timeout_is_well_above_the_sse_keep_alive_and_within_front_doors_range(infra):
    low, high = fd.ORIGIN_RESPONSE_TIMEOUT_RANGE_S
    assert low <= fd.ORIGIN_RESPONSE_TIMEOUT_S <= high
    assert fd.ORIGIN_RESPONSE_TIMEOUT_S >= 4 * KEEPALIVE_S

    profile = deploy(infra, front_door_args()).one(PROFILE)
    assert profile.get("originResponseTimeoutSeconds") == fd.ORIGIN_RESPONSE_TIMEOUT_S
    assert profile.get("location") == "global"


@pytest.mark.parametrize(("premium", "sku"), [(False, "Standard_AzureFrontDoor"), (True, "Premium_AzureFrontDoor")])
def test_the_profile_and_its_waf_policy_are_of_the_chosen_sku(infra, premium, sku):
    run = deploy(infra, front_door_args(premium=premium))

    assert run.one(PROFILE).get("sku.name") == sku
    assert run.one(WAF_POLICY).get("sku.name") == sku


def test_the_origin_group_probes_health_over_https_and_balances_by_latency_without_affinity(infra):
    group = deploy(infra, front_door_args()).one(ORIGIN_GROUP)

    assert group.get("healthProbeSettings") == {
        "probePath": "/health",
        "probeProtocol": "Https",
        "probeRequestType": "GET",
        "probeIntervalInSeconds": fd.PROBE_INTERVAL_S,
    }
    assert group.get("loadBalancingSettings") == {
        "sampleSize": fd.SAMPLE_SIZE,
        "successfulSamplesRequired": fd.SUCCESSFUL_SAMPLES_REQUIRED,
        "additionalLatencyInMilliseconds": fd.ADDITIONAL_LATENCY_MS,
    }
    assert group.get("sessionAffinityState") == "Disabled"


def test_a_dead_origin_leaves_rotation_after_the_failed_probes_the_samples_allow():
    # 4 samples, 3 must succeed: the second failed probe takes the origin out.
    assert fd.failover_bound_s() == fd.PROBE_INTERVAL_S * 2


@pytest.mark.parametrize("regions", [1, 2, 3])
def test_one_origin_per_region_named_after_it_at_equal_priority_and_weight_addressed_by_its_own_host(infra, regions):
    run = deploy(infra, front_door_args(regions))
    group = run.one(ORIGIN_GROUP)
    origins = run.of_type(ORIGIN)

    by_name = {o.name: o for o in origins}
    assert sorted(by_name) == sorted(f"fd-origin-{region}" for region in REGIONS[:regions])
    for region in REGIONS[:regions]:
        origin = by_name[f"fd-origin-{region}"]
        host = f"mcp-{region}.azurewebsites.net"
        assert origin.get("originName") == region  # what Front Door's logs name, and the workbook filters by
        assert origin.get("hostName") == host
        assert origin.get("originHostHeader") == host
        assert origin.get("enforceCertificateNameCheck") is True
        assert origin.get("originGroupName") == group.outputs["name"]
    assert {(o.get("priority"), o.get("weight")) for o in origins} == {(fd.ORIGIN_PRIORITY, fd.ORIGIN_WEIGHT)}


def test_the_route_forwards_everything_over_https_only_and_caches_nothing(infra):
    run = deploy(infra, front_door_args())
    route = run.one(ROUTE)

    assert route.get("patternsToMatch") == ["/*"]
    # HTTP is accepted only to be answered with the redirect; nothing is forwarded over it.
    assert route.get("supportedProtocols") == ["Http", "Https"]
    assert route.get("httpsRedirect") == "Enabled"
    assert route.get("forwardingProtocol") == "HttpsOnly"
    assert route.get("linkToDefaultDomain") == "Enabled"
    assert "cacheConfiguration" not in route.inputs
    assert route.get("originGroup.id") == run.one(ORIGIN_GROUP).outputs["id"]
    assert route.get("endpointName") == run.one(ENDPOINT).outputs["name"]
    # Created after the origins: a route to an empty origin group fails to deploy.
    assert {o.urn for o in run.of_type(ORIGIN)} <= route.dependencies


def test_standard_blocks_non_mcp_methods_and_rate_limits_each_client_with_custom_rules_only(infra):
    waf = deploy(infra, front_door_args(premium=False, rate_limit_per_minute=600)).one(WAF_POLICY)
    methods, rate = waf.get("customRules.rules")

    assert methods["action"] == rate["action"] == "Block"
    assert methods["ruleType"] == "MatchRule"
    on_mcp, method = methods["matchConditions"]
    assert on_mcp == {
        "matchVariable": "RequestUri",
        "operator": "Contains",
        "matchValue": ["/mcp"],
        "transforms": ["Lowercase"],
    }
    assert method == {
        "matchVariable": "RequestMethod",
        "operator": "Equal",
        "matchValue": ["GET", "POST", "DELETE", "OPTIONS"],
        "negateCondition": True,
    }
    assert rate["ruleType"] == "RateLimitRule"
    assert (rate["rateLimitThreshold"], rate["rateLimitDurationInMinutes"]) == (600, 1)
    assert rate["groupBy"] == [{"variableName": "SocketAddr"}]
    assert rate["matchConditions"] == [on_mcp]
    assert "managedRules" not in waf.inputs
    assert waf.get("policySettings") == {"enabledState": "Enabled", "mode": "Prevention"}


def test_premium_adds_the_default_and_bot_manager_rule_sets_and_inspects_bodies(infra):
    waf = deploy(infra, front_door_args(premium=True)).one(WAF_POLICY)

    assert waf.get("managedRules.managedRuleSets") == [
        {"ruleSetType": "Microsoft_DefaultRuleSet", "ruleSetVersion": "2.1", "ruleSetAction": "Block"},
        {"ruleSetType": "Microsoft_BotManagerRuleSet", "ruleSetVersion": "1.0", "ruleSetAction": "Block"},
    ]
    assert waf.get("policySettings.requestBodyCheck") == "Enabled"
    assert len(waf.get("customRules.rules")) == 2


def test_the_waf_policy_is_attached_to_the_endpoint_through_the_security_policy(infra):
    run = deploy(infra, front_door_args())
    waf = run.one(WAF_POLICY)
    policy = run.one(SECURITY_POLICY)

    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9]{0,127}", waf.get("policyName"))
    assert waf.get("location") == "Global"
    assert policy.get("parameters") == {
        "type": "WebApplicationFirewall",
        "wafPolicy": {"id": waf.outputs["id"]},
        "associations": [{"domains": [{"id": run.one(ENDPOINT).outputs["id"]}], "patternsToMatch": ["/*"]}],
    }


def test_front_doors_logs_and_metrics_go_to_the_workspace(infra):
    run = deploy(infra, front_door_args())
    setting = run.one(DIAGNOSTIC_SETTING)

    assert setting.get("resourceUri") == run.one(PROFILE).outputs["id"]
    assert setting.get("workspaceId") == WORKSPACE_ID
    assert [log["category"] for log in setting.get("logs")] == [
        "FrontDoorAccessLog",
        "FrontDoorHealthProbeLog",
        "FrontDoorWebApplicationFirewallLog",
    ]
    assert all(log["enabled"] for log in setting.get("logs"))
    assert setting.get("metrics") == [{"category": "AllMetrics", "enabled": True}]


def test_the_component_outputs_the_front_door_id_the_endpoint_and_the_mcp_url(infra):
    seen: dict[str, Any] = {}

    async def program():
        front_door = FrontDoor("fd", front_door_args())
        for key in ("profile_id", "front_door_id", "endpoint_host_name", "mcp_url"):
            seen[key] = await getattr(front_door, key).future()

    run = infra.run(program, computed=computed)

    assert seen == {
        "profile_id": run.one(PROFILE).outputs["id"],
        "front_door_id": FRONT_DOOR_ID,
        "endpoint_host_name": ENDPOINT_HOST,
        "mcp_url": f"https://{ENDPOINT_HOST}/mcp",
    }
    component = next(r for r in run.resources if r.type == "mcpscale:azure:FrontDoor")
    assert all(r.parent == component.urn for r in run.resources if r.type in SHAPES)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"origins": []}, "expected 1 to 50 origins, got 0"),
        ({"origins": [FrontDoorOrigin(f"region{i}", "h") for i in range(51)]}, "expected 1 to 50 origins, got 51"),
        ({"origins": [FrontDoorOrigin("westeurope", "a"), FrontDoorOrigin("westeurope", "b")]}, "westeurope appears more than once"),
        ({"origins": [FrontDoorOrigin("West Europe", "a")]}, "'West Europe' is not an Azure region name"),
        ({"rate_limit_per_minute": 0}, "rate_limit_per_minute: expected at least 1, got 0"),
    ],
)  # fmt: skip
def test_bad_arguments_fail_naming_the_input_before_anything_is_registered(overrides, message):
    base = {"resource_group_name": "rg-mcp", "workspace_id": WORKSPACE_ID, "tags": TAGS}
    base["origins"] = [FrontDoorOrigin("westeurope", "h")]
    with pytest.raises(ValueError, match=re.escape(message)):
        FrontDoorArgs(**{**base, **overrides})


def test_the_lock_admits_only_this_profile_through_the_front_door_service_tag_and_leaves_scm_to_deploys(infra):
    def program():
        web.WebApp(
            "site",
            resource_group_name="rg-mcp",
            site_config=web.SiteConfigArgs(**front_door_access(FRONT_DOOR_ID)),
        )

    config = infra.run(program).one("azure-native:web:WebApp").get("siteConfig")
    # The SDK adds its own defaults (http20Enabled, ...) to every siteConfig.
    access = {k: v for k, v in config.items() if "ipsecurityrestrictions" in k.lower()}

    assert access == {
        "ipSecurityRestrictions": [
            {
                "name": "AllowFrontDoor",
                "description": "Only this fleet's Front Door profile",
                "priority": 100,
                "action": "Allow",
                "tag": "ServiceTag",
                "ipAddress": "AzureFrontDoor.Backend",
                "headers": {"x-azure-fdid": [FRONT_DOOR_ID]},
            }
        ],
        "ipSecurityRestrictionsDefaultAction": "Deny",
        "scmIpSecurityRestrictionsUseMain": False,
    }
    check = validator("siteaccess_2025-05-01", "SiteConfigAccessRestrictions")
    assert not list(check.iter_errors(access))
    misspelt = copy.deepcopy(access)
    misspelt["ipSecurityRestrictions"][0]["header"] = misspelt["ipSecurityRestrictions"][0].pop("headers")
    assert list(check.iter_errors(misspelt))


def test_the_lock_takes_the_front_door_id_as_an_output(infra):
    async def program():
        profile_id = pulumi.Output.from_input("fdid-from-output")
        web.WebApp(
            "site", resource_group_name="rg-mcp", site_config=web.SiteConfigArgs(**front_door_access(profile_id))
        )

    site = infra.run(program).one("azure-native:web:WebApp")
    assert site.get("siteConfig.ipSecurityRestrictions.0.headers") == {"x-azure-fdid": ["fdid-from-output"]}


def test_easy_auth_behind_front_door_builds_its_urls_from_the_forwarded_host(infra):
    def program():
        web.WebAppAuthSettingsV2(
            "auth", name="site", resource_group_name="rg-mcp", http_settings=forward_proxy_http_settings()
        )

    settings = infra.run(program).one("azure-native:web:WebAppAuthSettingsV2").get("httpSettings")

    assert settings == {"requireHttps": True, "forwardProxy": {"convention": "Standard"}}
    check = validator("siteaccess_2025-05-01", "HttpSettings")
    assert not list(check.iter_errors(settings))
    assert list(check.iter_errors({**settings, "forwardProxy": {"convention": "XForwardedHost"}}))
