"""Every Azure payload the program sends, checked against Azure's published request shape.

The engine sees the SDK's property names; the azure-native provider turns
them into the ARM request body (resource-level fields at the top, the rest
under ``properties``, a few renamed). :func:`arm_body` does that conversion
explicitly for each resource type, with the renames Azure's specs declare, and
the body is validated against the schema transcribed from the spec at the
API version azure-native uses (tests/infra/schemas/README.md).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.infra.conftest import StackRun, mocked_stack

SCHEMAS = Path(__file__).with_name("schemas")
SCHEMA_AUTOSCALE = SCHEMAS / "autoscale_2022-10-01.schema.json"

# Resource type -> (schema file, definition, inputs that are the request path, inputs at the body's top level).
SHAPES = {
    "azure-native:keyvault:Vault": (
        "keyvault_2024-11-01", "VaultCreateOrUpdateParameters", {"resourceGroupName", "vaultName"}, {"location", "tags"}
    ),
    "azure-native:keyvault:Secret": (
        "keyvault_2024-11-01", "SecretCreateOrUpdateParameters", {"resourceGroupName", "vaultName", "secretName"}, {"tags"}
    ),
    "azure-native:authorization:RoleAssignment": (
        "roleassignments_2022-04-01", "RoleAssignmentCreateParameters", {"scope", "roleAssignmentName"}, set()
    ),
    "azure-native:monitor:DiagnosticSetting": (
        "diagnosticsettings_2021-05-01-preview", "DiagnosticSettingsResource", {"resourceUri", "name"}, set()
    ),
    "azure-native:monitor:MetricAlert": (
        "metricalerts_2018-03-01", "MetricAlertResource", {"resourceGroupName", "ruleName"}, {"location", "tags"}
    ),
    "azure-native:monitor:ActionGroup": (
        "actiongroups_2024-10-01-preview", "ActionGroupResource", {"resourceGroupName", "actionGroupName"},
        {"location", "tags", "identity"},
    ),
    "azure-native:applicationinsights:Component": (
        "components_2020-02-02", "ApplicationInsightsComponent", {"resourceGroupName", "resourceName"},
        {"location", "tags", "kind", "etag"},
    ),
    "azure-native:web:AppServicePlan": (
        "serverfarms_2025-05-01", "AppServicePlan", {"resourceGroupName", "name"}, {"location", "tags", "kind", "sku"}
    ),
    "azure-native:web:WebAppAuthSettingsV2": (
        "authsettingsv2_2021-02-01", "SiteAuthSettingsV2", {"resourceGroupName", "name"}, {"kind"}
    ),
    "azure-native:web:WebAppAuthSettingsV2Slot": (
        "authsettingsv2_2021-02-01", "SiteAuthSettingsV2", {"resourceGroupName", "name", "slot"}, {"kind"}
    ),
    "azure-native:network:VirtualNetwork": (
        "virtualnetworks_2024-05-01", "VirtualNetwork", {"resourceGroupName", "virtualNetworkName"},
        {"location", "tags"},
    ),
    "azure-native:network:Subnet": (
        "virtualnetworks_2024-05-01", "Subnet", {"resourceGroupName", "virtualNetworkName", "subnetName"}, {"name"}
    ),
    "azure-native:network:PrivateEndpoint": (
        "privateendpoints_2024-05-01", "PrivateEndpoint", {"resourceGroupName", "privateEndpointName"},
        {"location", "tags"},
    ),
    "azure-native:network:PrivateDnsZoneGroup": (
        "privateendpoints_2024-05-01", "PrivateDnsZoneGroup",
        {"resourceGroupName", "privateEndpointName", "privateDnsZoneGroupName"}, {"name"},
    ),
    "azure-native:privatedns:PrivateZone": (
        "privatedns_2024-06-01", "PrivateZone", {"resourceGroupName", "privateZoneName"}, {"location", "tags"}
    ),
    "azure-native:privatedns:VirtualNetworkLink": (
        "privatedns_2024-06-01", "VirtualNetworkLink",
        {"resourceGroupName", "privateZoneName", "virtualNetworkLinkName"},
        {"location", "tags"},
    ),
    "azure-native:web:WebAppApplicationSettings": (
        "webapps_2025-05-01", "StringDictionary", {"resourceGroupName", "name"}, {"kind"}
    ),
    "azure-native:web:WebAppApplicationSettingsSlot": (
        "webapps_2025-05-01", "StringDictionary", {"resourceGroupName", "name", "slot"}, {"kind"}
    ),
    "azure-native:redisenterprise:RedisEnterprise": (
        "redisenterprise_2025-07-01", "Cluster", {"resourceGroupName", "clusterName"},
        {"location", "tags", "sku", "zones", "identity"},
    ),
    "azure-native:redisenterprise:Database": (
        "redisenterprise_2025-07-01", "Database", {"resourceGroupName", "clusterName", "databaseName"}, set()
    ),
    "azure-native:redisenterprise:AccessPolicyAssignment": (
        "redisenterprise_2025-07-01", "AccessPolicyAssignment",
        {"resourceGroupName", "clusterName", "databaseName", "accessPolicyAssignmentName"}, set(),
    ),
}  # fmt: skip
# Resource types whose request path parameters have patterns of their own, transcribed as the definition named.
PATH_SHAPES = {
    "azure-native:redisenterprise:Database": "PathParameters",
    "azure-native:redisenterprise:AccessPolicyAssignment": "PathParameters",
}

# SDK name -> wire name, where the spec's x-ms-client-name differs from the wire name.
RENAMES = {
    "azure-native:applicationinsights:Component": {
        "applicationType": "Application_Type",
        "flowType": "Flow_Type",
        "requestSource": "Request_Source",
        "ingestionMode": "IngestionMode",
        "workspaceResourceId": "WorkspaceResourceId",
        "disableLocalAuth": "DisableLocalAuth",
        "disableIpMasking": "DisableIpMasking",
        "samplingPercentage": "SamplingPercentage",
    },
}
CRITERIA_RENAMES = {"odataType": "odata.type"}
# Properties whose value (an object, or each item of an array) the SDK flattens like a resource: property ->
# members kept at the value's top (the rest go under its ``properties``), as the specs' x-ms-client-flatten declares.
FLATTENED = {
    "delegations": {"id", "name", "type"},
    "subnet": {"id", "name", "type"},
    "privateLinkServiceConnections": {"id", "name"},
    "privateDnsZoneConfigs": {"name"},
}


def arm_body(registration) -> dict[str, Any]:
    """The ARM PUT body for ``registration``'s inputs."""
    _, _, path, top = SHAPES[registration.type]
    inputs = {k: v for k, v in registration.inputs.items() if k not in path}
    body = {k: inputs.pop(k) for k in list(inputs) if k in top}
    renames = RENAMES.get(registration.type, {})
    properties = dict(inputs.pop("properties", {}))
    for key, value in inputs.items():
        properties[renames.get(key, key)] = value
    for key, top_level in FLATTENED.items():
        if isinstance(properties.get(key), list):
            properties[key] = [_flattened(item, top_level) for item in properties[key]]
        elif key in properties:
            properties[key] = _flattened(properties[key], top_level)
    if "criteria" in properties:
        properties["criteria"] = {CRITERIA_RENAMES.get(k, k): v for k, v in properties["criteria"].items()}
    if properties:
        body["properties"] = properties
    return body


def _flattened(item: dict[str, Any], top_level: set[str]) -> dict[str, Any]:
    flat = {k: v for k, v in item.items() if k in top_level}
    rest = {k: v for k, v in item.items() if k not in top_level}
    return {**flat, "properties": rest} if rest else flat


def validator(resource_type: str, definition: str | None = None) -> jsonschema.Draft7Validator:
    name, body, _, _ = SHAPES[resource_type]
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    return jsonschema.Draft7Validator({**schema, "$ref": f"#/definitions/{definition or body}"})


def path_parameters(registration) -> dict[str, Any]:
    """The inputs of ``registration`` that become its request path."""
    _, _, path, _ = SHAPES[registration.type]
    return {k: v for k, v in registration.inputs.items() if k in path}


FULL = {
    "authClientId": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
    "authTenantId": "11111111-2222-3333-4444-555555555555",
    "authAllowedClientApps": "aaaaaaaa-0000-0000-0000-000000000001",
    "alertEmails": "ops@example.com,oncall@example.org",
    "rateLimits": '{"*": {"perCaller": "600/minute"}, "compute_primes": {"total": "1000/minute"}}',
}


@pytest.fixture(scope="module")
def full_prod() -> Iterator[StackRun]:
    """The prod stack with every option, run once for the module: its tests only read it."""
    with mocked_stack() as harness:
        yield harness.run_main({**harness.stack_config("prod"), **FULL})


def test_every_payload_of_the_stacks_matches_its_azure_shape(infra, full_prod):
    checked = set()
    for stack, run in {"prod, every option": full_prod, "dev": infra.run_main(infra.stack_config("dev"))}.items():
        for registration in run.resources:
            if registration.type not in SHAPES:
                continue
            errors = [e.message for e in validator(registration.type).iter_errors(arm_body(registration))]
            assert not errors, f"{stack}: {registration.type} {registration.name}: {errors}"
            checked.add(registration.type)
    assert checked == set(SHAPES)


def test_the_redis_request_paths_match_their_azure_patterns(full_prod):
    checked = set()
    for registration in full_prod.resources:
        if registration.type in PATH_SHAPES:
            check = validator(registration.type, PATH_SHAPES[registration.type])
            errors = [e.message for e in check.iter_errors(path_parameters(registration))]
            assert not errors, f"{registration.type} {registration.name}: {errors}"
            checked.add(registration.type)
    assert checked == set(PATH_SHAPES)


@pytest.mark.parametrize(
    ("resource_type", "parameter", "value"),
    [
        ("azure-native:redisenterprise:AccessPolicyAssignment", "accessPolicyAssignmentName", "mcp-redis-data"),
        ("azure-native:redisenterprise:Database", "clusterName", "rate--limits"),
    ],
)
def test_the_path_patterns_reject_a_wrong_name(full_prod, resource_type, parameter, value):
    parameters = path_parameters(full_prod.of_type(resource_type)[0])
    check = validator(resource_type, PATH_SHAPES[resource_type])
    assert not list(check.iter_errors(parameters))
    assert list(check.iter_errors({**parameters, parameter: value})), parameter


def test_the_autoscale_setting_with_notifications_matches_its_azure_shape(full_prod):
    setting = full_prod.one("azure-native:monitor:AutoscaleSetting")
    schema = json.loads(SCHEMA_AUTOSCALE.read_text())
    properties = schema["definitions"]["AutoscaleSetting"]["properties"]
    body = {k: v for k, v in setting.inputs.items() if k in properties}
    assert "notifications" in body
    jsonschema.validate({"location": setting.get("location"), "tags": setting.get("tags"), "properties": body}, schema)


def _broken(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    broken = copy.deepcopy(body)
    target = broken
    *parents, last = path.split(".")
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    target[last] = value
    return broken


@pytest.mark.parametrize(
    ("resource_type", "path", "value"),
    [
        ("azure-native:keyvault:Vault", "properties.enablePurgeProtection", False),
        ("azure-native:keyvault:Vault", "properties.enableRbacAuthorisation", True),
        ("azure-native:keyvault:Secret", "properties.secretUri", "https://x"),
        ("azure-native:authorization:RoleAssignment", "properties.principalType", "Application"),
        ("azure-native:monitor:DiagnosticSetting", "properties.logAnalyticsDestinationType", "AzureDiagnostics"),
        ("azure-native:monitor:MetricAlert", "properties.severity", 5),
        ("azure-native:monitor:MetricAlert", "properties.criteria.odataType", "x"),
        ("azure-native:monitor:ActionGroup", "properties.groupShortName", "mcp-alerts-prod"),
        ("azure-native:applicationinsights:Component", "properties.disableLocalAuth", True),
        ("azure-native:web:AppServicePlan", "sku.tier", "PremiumV3x"),
        ("azure-native:web:AppServicePlan", "properties.zoneRedundent", True),
        ("azure-native:web:WebAppAuthSettingsV2", ("properties.identityProviders.azureActiveDirectory.validation."
         "defaultAuthorizationPolicy.allowedApps"), []),
        ("azure-native:keyvault:Vault", "properties.networkAcls.defaultAction", "Block"),
        ("azure-native:network:VirtualNetwork", "properties.addressSpace.addressPrefix", "10.0.0.0/24"),
        ("azure-native:network:Subnet", "properties.delegations.0.serviceName", "Microsoft.Web/serverFarms"),
        ("azure-native:network:PrivateEndpoint", "properties.privateLinkServiceConnections.0.properties.groupId",
         "vault"),
        ("azure-native:network:PrivateDnsZoneGroup", "properties.privateDnsZoneConfigs.0.privateDnsZoneId", "x"),
        ("azure-native:privatedns:PrivateZone", "properties", {"registrationEnabled": False}),
        ("azure-native:privatedns:VirtualNetworkLink", "properties.registrationEnabled", "false"),
        ("azure-native:web:WebAppApplicationSettings", "properties.WEB_CONCURRENCY", 2),
        ("azure-native:web:WebAppApplicationSettingsSlot", "appSettings", []),
        ("azure-native:redisenterprise:RedisEnterprise", "sku.name", "Balanced_B2"),
        ("azure-native:redisenterprise:RedisEnterprise", "properties.publicNetworkAccess", "disabled"),
        ("azure-native:redisenterprise:RedisEnterprise", "properties.minimumTlsVersion", "1.3"),
        ("azure-native:redisenterprise:Database", "properties.clusteringPolicy", "Enterprise"),
        ("azure-native:redisenterprise:Database", "properties.accessKeyAuthentication", "Disabled"),
        ("azure-native:redisenterprise:AccessPolicyAssignment", "properties.user.objectID", "x"),
        ("azure-native:redisenterprise:AccessPolicyAssignment", "properties.accessPolicyName", "-default"),
    ],
)  # fmt: skip
def test_the_shapes_reject_a_wrong_value_or_wire_name(full_prod, resource_type, path, value):
    body = arm_body(full_prod.of_type(resource_type)[0])
    assert not list(validator(resource_type).iter_errors(body))
    assert list(validator(resource_type).iter_errors(_broken(body, path, value))), path
