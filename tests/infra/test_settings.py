"""McpFleetArgs.from_config(): every config key typed and validated, with errors naming key, value and what is
allowed."""

from __future__ import annotations

import logging
import re
import uuid

import pulumi
import pytest
import yaml

from components.fleet import McpFleetArgs
from components.server_source import BUNDLED_SERVER, ServerSource
from components.settings import (
    BUNDLED_SERVER_TOOLS,
    MIN_HANDLE_SECRET_LENGTH,
    PYTHON_VERSIONS,
    SKUS,
    ConfigError,
    config_keys,
    workbook_name,
)
from tests.infra.conftest import PROJECT_FILE, ROOT
from tests.team_server import SERVER, write_team_server

LOCATION = {"azure-native:location": "westeurope"}
GOOD_SECRET = "s" * MIN_HANDLE_SECRET_LENGTH


KEYS = tuple(key.name for key in config_keys(McpFleetArgs))


def load(infra, config=None, secret_keys=()):
    """McpFleetArgs.from_config() with ``config`` (plus a location) as the stack's config."""
    loaded = []
    infra.run(
        lambda: loaded.append(McpFleetArgs.from_config()), {**LOCATION, **(config or {})}, secret_keys=secret_keys
    )
    return loaded[0]


def problems(infra, config, secret_keys=()) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load(infra, config, secret_keys)
    assert str(raised.value).startswith("invalid stack configuration")
    return raised.value.problems


def test_defaults_are_the_documented_ones(infra):
    settings = load(infra)
    assert settings.instance_count == 3
    assert settings.sku.name == "P0v3" and settings.sku.tier.name == "PremiumV3"
    assert settings.python_version == "3.12"
    assert settings.autoscale is True
    assert settings.autoscale_max_count == 10
    assert (settings.cpu_scale_out_threshold, settings.cpu_scale_in_threshold) == (70, 30)
    assert settings.staging_slot is True
    assert settings.swap is None
    assert settings.handle_keys is None
    assert settings.request_state_keys is None
    assert settings.key_vault_purge_protection is True
    assert settings.zone_redundant is False
    assert settings.alert_emails == ()
    assert settings.easy_auth is None
    assert settings.allowed_origins == ()
    assert settings.resource_group_name is None
    assert settings.tool_roles == {}
    assert settings.server == ServerSource(BUNDLED_SERVER, None)
    assert settings.location == "westeurope"
    assert (settings.regions, settings.stamp_regions) == ((), ("westeurope",))
    assert (settings.front_door, settings.front_door_sku) == (False, "Standard")
    assert settings.tags == {"project": "mcpscale-azure", "stack": "test"}


# The Python type of a default Pulumi.yaml declares as each of its config types.
PULUMI_TYPES = {"integer": int, "boolean": bool, "string": str}


def test_pulumi_yaml_declares_each_key_with_the_type_and_default_the_args_declare():
    schema = yaml.safe_load(PROJECT_FILE.read_text())["config"]
    for key, spec in schema.items():
        assert spec.keys() == {"type", "default", "description"}, key
        assert type(spec["default"]) is PULUMI_TYPES[spec["type"]], key
    # type(...) keeps 1 from true and "3" from 3, which compare or print alike.
    declared = {key: (spec["type"], type(spec["default"]), spec["default"]) for key, spec in schema.items()}
    read = {key.name: (key.type, type(key.default), key.default) for key in config_keys(McpFleetArgs)}
    assert declared == read
    for key in config_keys(McpFleetArgs):
        assert schema[key.name]["description"].startswith("Secret (`pulumi config set --secret`)") is key.secret, key


def test_pulumi_yaml_defaults_handed_over_by_the_cli_mean_the_args_defaults(infra):
    schema = yaml.safe_load(PROJECT_FILE.read_text())["config"]
    from_yaml = load(infra, {key: spec["default"] for key, spec in schema.items()})
    assert from_yaml == load(infra) == McpFleetArgs(location="westeurope", project="mcpscale-azure", stack="test")


README_DEFAULT = re.compile(
    r"^(?:`(?P<value>[^`]*)`|(?P<word>unset|generated|none \(required\)))(?P<notes>( \([^()]*\))*)$"
)
STACK_ANNOTATION = re.compile(r"\((dev|prod): `([^`]*)`\)")


def readme_defaults() -> dict[str, str]:
    """Key -> default cell of the README's "### Configuration keys" table (``key | default | allowed values``)."""
    section = (ROOT / "README.md").read_text().split("\n### Configuration keys\n", 1)[1]
    lines = iter(section.splitlines())
    assert next(line for line in lines if line.startswith("|")) == "| key | default | allowed values |"
    assert next(lines).startswith("|---|")
    defaults = {}
    for line in lines:
        if not line.startswith("|"):
            break
        _, keys, default, _allowed = line.split("|", 3)
        for key in re.findall(r"`([^`]+)`", keys):
            defaults[key] = default.strip()
    return defaults


def cli_text(value) -> str:
    """A YAML value as the CLI hands it to the program."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def test_readme_configuration_table_documents_each_key_with_pulumi_yaml_default_and_the_stack_files_values():
    """The rule for the default column: a key whose Pulumi.yaml default is empty reads ``generated`` when it is a
    secret the program generates and ``unset`` otherwise; any other default is that default in backticks; a key
    without one (``azure-native:location``) reads ``none (required)``. Free notes in parentheses may follow, and
    ``(dev: `value`)`` / ``(prod: `value`)`` appear exactly where that stack file sets another value than the
    default."""
    schema = yaml.safe_load(PROJECT_FILE.read_text())["config"]
    secret = {key.name: key.secret for key in config_keys(McpFleetArgs)}
    stacks = {
        stack: {
            key.removeprefix("mcpscale-azure:"): value
            for key, value in yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"].items()
        }
        for stack in ("dev", "prod")
    }
    documented = readme_defaults()
    assert documented.keys() == {*schema, "azure-native:location"}
    assert documented["azure-native:location"] == "none (required)"
    for key, spec in schema.items():
        cell = README_DEFAULT.match(documented[key])
        assert cell, (key, documented[key])
        default = cli_text(spec["default"])
        if default:
            assert cell["value"] == default, key
        else:
            assert cell["word"] == ("generated" if secret[key] else "unset"), key
        overridden = {
            stack: cli_text(values[key])
            for stack, values in stacks.items()
            if key in values and cli_text(values[key]) != default
        }
        assert dict(STACK_ANNOTATION.findall(cell["notes"])) == overridden, key


def test_pulumi_yaml_schema_covers_every_key_the_program_reads(infra, monkeypatch):
    schema = set(yaml.safe_load(PROJECT_FILE.read_text())["config"])
    read: set[str] = set()
    original = pulumi.Config.get

    def recording_get(self, key, default=None):
        if self.name == "mcpscale-azure":
            read.add(key)
        return original(self, key, default)

    monkeypatch.setattr(pulumi.Config, "get", recording_get)
    load(infra)
    assert read == schema == set(KEYS)


def test_a_misspelt_key_is_rejected_with_a_suggestion(infra):
    (found,) = problems(infra, {"instanceCont": 5})
    assert found.startswith("mcpscale-azure:instanceCont is not a setting of this project: did you mean instanceCount?")
    assert "known keys: instanceCount, sku," in found
    (found,) = problems(infra, {"colour": "blue"})
    assert found.startswith("mcpscale-azure:colour is not a setting of this project: known keys:")


def test_keys_of_other_namespaces_are_left_to_their_owners(infra):
    assert load(infra, {"azure-native:subscriptionId": "x", "random:anything": "y"}).instance_count == 3


@pytest.mark.parametrize("count", range(1, 11))
def test_instance_count_from_1_to_10_is_accepted(infra, count):
    assert load(infra, {"instanceCount": count}).instance_count == count


@pytest.mark.parametrize("value", [0, 11, -1, "three", 2.5, "", "3 instances", "1e1"])
def test_instance_count_outside_1_to_10_or_not_an_integer_is_rejected(infra, value):
    found = problems(infra, {"instanceCount": value})
    assert len(found) == 1
    assert found[0].startswith(f"mcpscale-azure:instanceCount = {str(value)!r} is not allowed")
    assert "whole number from 1 to 10" in found[0]


@pytest.mark.parametrize("sku", sorted(SKUS))
def test_every_listed_sku_is_accepted_with_the_features_its_tier_has(infra, sku):
    tier = SKUS[sku].tier
    settings = load(
        infra,
        {
            "sku": sku,
            "instanceCount": 1,
            "autoscale": tier.autoscale,
            "autoscaleMaxCount": min(10, tier.max_instances),
            "stagingSlot": tier.slots,
        },
    )
    assert settings.sku.name == sku


@pytest.mark.parametrize("sku", ["F1", "D1", "p0v3", "P0V3", "Y1", "EP1"])
def test_unknown_or_unsuitable_skus_are_rejected_listing_the_allowed_ones(infra, sku):
    (found,) = problems(infra, {"sku": sku})
    assert found.startswith(f"mcpscale-azure:sku = {sku!r} is not allowed: expected one of B1, B2, B3, S1")
    assert "P0v3" in found


def test_autoscale_on_a_basic_sku_names_the_feature_and_the_tier_it_needs(infra):
    (found,) = problems(infra, {"sku": "B1", "instanceCount": 1, "stagingSlot": False})
    assert found.startswith("mcpscale-azure:autoscale = 'true' is not allowed")
    assert "autoscale needs a Standard or Premium sku" in found and "B1 is Basic" in found


def test_staging_slot_on_a_basic_sku_names_the_feature_and_the_tier_it_needs(infra):
    (found,) = problems(infra, {"sku": "B2", "instanceCount": 1, "autoscale": False})
    assert found.startswith("mcpscale-azure:stagingSlot = 'true' is not allowed")
    assert "deployment slots need a Standard or Premium sku" in found and "B2 is Basic" in found


def test_basic_sku_with_both_features_reports_both_conflicts_at_once(infra):
    found = problems(infra, {"sku": "B1", "instanceCount": 1})
    assert [p.split(" = ")[0] for p in found] == ["mcpscale-azure:autoscale", "mcpscale-azure:stagingSlot"]


def test_instance_count_above_the_tier_limit_is_rejected(infra):
    (found,) = problems(infra, {"sku": "B1", "instanceCount": 4, "autoscale": False, "stagingSlot": False})
    assert found.startswith("mcpscale-azure:instanceCount = '4' is not allowed: sku B1 (Basic tier) runs at most 3")


def test_autoscale_max_above_the_tier_limit_is_rejected(infra):
    (found,) = problems(infra, {"sku": "S1", "autoscaleMaxCount": 11})
    assert found.startswith("mcpscale-azure:autoscaleMaxCount = '11' is not allowed: sku S1 (Standard tier)")
    assert load(infra, {"sku": "P1v3", "autoscaleMaxCount": 30}).autoscale_max_count == 30


@pytest.mark.parametrize("value", [0, 31, "ten", 4.5])
def test_autoscale_max_must_be_a_whole_number_within_azure_limits(infra, value):
    (found,) = problems(infra, {"autoscaleMaxCount": value})
    assert found.startswith(f"mcpscale-azure:autoscaleMaxCount = {str(value)!r} is not allowed")


def test_autoscale_max_below_instance_count_is_rejected(infra):
    (found,) = problems(infra, {"instanceCount": 5, "autoscaleMaxCount": 4})
    assert found == (
        "mcpscale-azure:autoscaleMaxCount = '4' is not allowed: "
        "expected at least instanceCount (5), the autoscale minimum"
    )


def test_autoscale_max_is_not_checked_against_instances_when_autoscale_is_off(infra):
    settings = load(infra, {"instanceCount": 5, "autoscaleMaxCount": 4, "autoscale": False})
    assert settings.autoscale is False


@pytest.mark.parametrize("value", ["yes", "1", "on", "True!"])
def test_booleans_are_true_or_false(infra, value):
    (found,) = problems(infra, {"stagingSlot": value})
    assert found == f"mcpscale-azure:stagingSlot = {value!r} is not allowed: expected true or false"


def test_booleans_accept_any_case(infra):
    assert load(infra, {"autoscale": "False", "stagingSlot": "TRUE"}).autoscale is False


@pytest.mark.parametrize("version", PYTHON_VERSIONS)
def test_python_versions_app_service_offers_are_accepted(infra, version):
    assert load(infra, {"pythonVersion": version}).python_version == version


@pytest.mark.parametrize("version", ["3.10", "3.1", "2.7", "3", "python3.12"])
def test_other_python_versions_are_rejected(infra, version):
    (found,) = problems(infra, {"pythonVersion": version})
    assert found == (
        f"mcpscale-azure:pythonVersion = {version!r} is not allowed: expected one of " + ", ".join(PYTHON_VERSIONS)
    )


def test_scale_in_threshold_must_be_below_scale_out(infra):
    (found,) = problems(infra, {"cpuScaleOutThreshold": 50, "cpuScaleInThreshold": 50})
    assert found == "mcpscale-azure:cpuScaleInThreshold = '50' is not allowed: expected below cpuScaleOutThreshold (50)"


def test_thresholds_too_close_to_scale_in_without_flapping_are_rejected(infra):
    # From 2 instances to 1 at 40% CPU the one left runs at 80%: above 70, so it would scale out again.
    (found,) = problems(infra, {"instanceCount": 1, "cpuScaleInThreshold": 40})
    assert found.startswith("mcpscale-azure:cpuScaleInThreshold = '40' is not allowed: scaling in from 2 to 1")
    assert "projects 80%" in found and "would flap" in found and "expected below 35" in found
    # With a minimum of 3, going from 4 to 3 at 40% projects 53%: fine.
    assert load(infra, {"instanceCount": 3, "cpuScaleInThreshold": 40}).cpu_scale_in_threshold == 40


def test_default_thresholds_never_flap_for_any_instance_count(infra):
    for count in range(1, 11):
        assert load(infra, {"instanceCount": count}).cpu_scale_in_threshold == 30


def test_thresholds_are_not_checked_for_flapping_when_autoscale_is_off(infra):
    assert load(infra, {"autoscale": False, "cpuScaleInThreshold": 60}).autoscale is False


@pytest.mark.parametrize(
    ("key", "value"), [("cpuScaleOutThreshold", 100), ("cpuScaleOutThreshold", 1), ("cpuScaleInThreshold", 0)]
)
def test_thresholds_are_percentages_azure_can_cross(infra, key, value):
    (found,) = problems(infra, {key: value})
    assert found.startswith(f"mcpscale-azure:{key} = '{value}' is not allowed: expected a whole number")


def test_swap_is_an_optional_label(infra):
    assert load(infra, {"swap": ""}).swap is None
    assert load(infra, {"swap": "2"}).swap == "2"
    (found,) = problems(infra, {"swap": "x" * 129})
    assert "at most 128 characters" in found


def test_swap_without_a_staging_slot_is_rejected(infra):
    (found,) = problems(infra, {"swap": "1", "stagingSlot": False})
    assert found == (
        "mcpscale-azure:swap = '1' is not allowed: a swap needs the staging slot; set stagingSlot true or unset swap"
    )


KEY_RINGS = {"handleKeys": "handle_keys", "requestStateKeys": "request_state_keys"}


@pytest.mark.parametrize("key", sorted(KEY_RINGS))
def test_key_rings_are_kept_as_a_secret(infra, key):
    ring = f"k2:{GOOD_SECRET},k1:{'t' * 40}"
    settings = load(infra, {key: ring}, secret_keys=[key])
    assert ring not in repr(settings)
    value = getattr(settings, KEY_RINGS[key])
    other = getattr(settings, KEY_RINGS[next(k for k in KEY_RINGS if k != key)])
    assert other is None
    seen = []

    async def resolve():
        seen.append((await value.future(), await value.is_secret()))

    infra.run(lambda: resolve())
    assert seen == [(ring, True)]


@pytest.mark.parametrize("key", sorted(KEY_RINGS))
def test_key_rings_in_plain_text_are_rejected_without_echoing_them(infra, key):
    (found,) = problems(infra, {key: f"k1:{GOOD_SECRET}"})
    assert GOOD_SECRET not in found
    assert found.startswith(f"mcpscale-azure:{key} is stored in plain text")
    assert f"pulumi config set --secret {key}" in found


@pytest.mark.parametrize(
    "ring",
    [
        GOOD_SECRET,  # no key id
        f"k1:{'s' * (MIN_HANDLE_SECRET_LENGTH - 1)}",  # short secret
        f"k1:{GOOD_SECRET},k1:{GOOD_SECRET}x",  # duplicate key id
        f"bad id:{GOOD_SECRET}",
        f"k1:{GOOD_SECRET},",
    ],
)
@pytest.mark.parametrize("key", sorted(KEY_RINGS))
def test_malformed_key_rings_are_rejected_without_echoing_them(infra, ring, key):
    (found,) = problems(infra, {key: ring}, secret_keys=[key])
    assert found.startswith(f"mcpscale-azure:{key} = <secret> is not allowed: expected a key ring kid:secret")
    assert GOOD_SECRET[: MIN_HANDLE_SECRET_LENGTH - 1] not in found


def test_easy_auth_needs_client_and_tenant(infra):
    client, tenant = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "11111111-2222-3333-4444-555555555555"
    auth = load(infra, {"authClientId": client, "authTenantId": tenant}).easy_auth
    assert auth.client_id == client and auth.tenant_id == tenant
    assert auth.scopes == (f"api://{client}/user_impersonation",)
    assert auth.issuer == f"https://login.microsoftonline.com/{tenant}/v2.0"
    (found,) = problems(infra, {"authClientId": client})
    assert found == "mcpscale-azure:authTenantId is not set: Easy Auth needs both authClientId and authTenantId"
    (found,) = problems(infra, {"authScopes": "api://x/.default"})
    assert found.startswith("mcpscale-azure:authScopes = 'api://x/.default' is not allowed: only used with Easy Auth")


def test_easy_auth_scopes_can_be_set(infra):
    config = {
        "authClientId": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
        "authTenantId": "11111111-2222-3333-4444-555555555555",
        "authScopes": "api://mcp/tools.read, api://mcp/tools.call",
    }
    assert load(infra, config).easy_auth.scopes == ("api://mcp/tools.read", "api://mcp/tools.call")


def test_easy_auth_ids_must_be_guids(infra):
    found = problems(infra, {"authClientId": "my-app", "authTenantId": "contoso.onmicrosoft.com"})
    assert found == [
        "mcpscale-azure:authClientId = 'my-app' is not allowed: expected a GUID like 00000000-0000-0000-0000-000000000000",
        (
            "mcpscale-azure:authTenantId = 'contoso.onmicrosoft.com' is not allowed: "
            "expected a GUID like 00000000-0000-0000-0000-000000000000"
        ),
    ]


def test_easy_auth_allowed_client_apps_are_guids(infra):
    config = {
        "authClientId": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
        "authTenantId": "11111111-2222-3333-4444-555555555555",
        "authAllowedClientApps": "aaaaaaaa-0000-0000-0000-000000000001, aaaaaaaa-0000-0000-0000-000000000002",
    }
    assert load(infra, config).easy_auth.allowed_applications == (
        "aaaaaaaa-0000-0000-0000-000000000001",
        "aaaaaaaa-0000-0000-0000-000000000002",
    )
    assert load(infra, {**config, "authAllowedClientApps": ""}).easy_auth.allowed_applications == ()
    (found,) = problems(infra, {**config, "authAllowedClientApps": "vscode,aaaaaaaa-0000-0000-0000-000000000001"})
    assert found.startswith("mcpscale-azure:authAllowedClientApps = 'vscode,aaaaaaaa-0000-0000-0000-000000000001'")
    assert found.endswith("expected comma-separated client (application) ids, GUIDs; bad: vscode")


def test_easy_auth_allowed_client_apps_without_easy_auth_are_rejected(infra):
    (found,) = problems(infra, {"authAllowedClientApps": "aaaaaaaa-0000-0000-0000-000000000001"})
    assert found == (
        "mcpscale-azure:authAllowedClientApps = 'aaaaaaaa-0000-0000-0000-000000000001' is not allowed: "
        "only used with Easy Auth; set authClientId and authTenantId"
    )


EASY_AUTH = {
    "authClientId": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
    "authTenantId": "11111111-2222-3333-4444-555555555555",
}


def warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_the_prod_stack_refuses_easy_auth_open_to_any_client_app_before_any_resource_registers(infra):
    with pytest.raises(ConfigError) as raised:
        infra.run_main({**infra.stack_config("prod"), **EASY_AUTH})
    assert raised.value.problems == [
        "mcpscale-azure:authAllowedClientApps = '' is not allowed: empty accepts a token from any client app in the "
        "tenant, and this stack sets requireAllowedClientApps true; list the MCP clients' application (client) ids, "
        "or set authAllowAnyClientApp true to accept any client app in the tenant"
    ]
    assert infra.last.resources == []


def test_the_dev_stack_allows_easy_auth_open_to_any_client_app_with_a_warning(infra, caplog):
    with caplog.at_level(logging.WARNING):
        auth = load(infra, {**infra.stack_config("dev"), **EASY_AUTH}).easy_auth
    assert auth.allowed_applications == ()
    assert warnings(caplog) == [
        "mcpscale-azure:authAllowedClientApps is empty: /mcp accepts a token from any client app in tenant "
        "11111111-2222-3333-4444-555555555555; list the MCP clients' application ids to restrict it"
    ]


@pytest.mark.parametrize("stack", ["prod", "dev"])
def test_easy_auth_open_to_any_client_app_is_allowed_silently_when_opted_into(infra, caplog, stack):
    with caplog.at_level(logging.WARNING):
        auth = load(infra, {**infra.stack_config(stack), **EASY_AUTH, "authAllowAnyClientApp": "true"}).easy_auth
    assert auth.allowed_applications == () and warnings(caplog) == []


def test_listed_client_apps_need_no_opt_in_on_prod(infra, caplog):
    with caplog.at_level(logging.WARNING):
        app = "aaaaaaaa-0000-0000-0000-000000000001"
        config = {**infra.stack_config("prod"), **EASY_AUTH, "authAllowedClientApps": app}
        assert load(infra, config).easy_auth.allowed_applications == (app,)
    assert warnings(caplog) == []


def test_alert_emails_are_addresses(infra):
    settings = load(infra, {"alertEmails": "ops@example.com, oncall@example.org"})
    assert settings.alert_emails == ("ops@example.com", "oncall@example.org")
    (found,) = problems(infra, {"alertEmails": "ops@example.com,team"})
    assert found == (
        "mcpscale-azure:alertEmails = 'ops@example.com,team' is not allowed: "
        "expected comma-separated e-mail addresses like ops@example.com; bad: team"
    )


def test_purge_protection_is_a_boolean_on_by_default(infra):
    assert load(infra, {"keyVaultPurgeProtection": False}).key_vault_purge_protection is False
    (found,) = problems(infra, {"keyVaultPurgeProtection": "sometimes"})
    assert found == "mcpscale-azure:keyVaultPurgeProtection = 'sometimes' is not allowed: expected true or false"


@pytest.mark.parametrize("sku", ["P1v2", "P0v3", "P3v3", "P1mv3"])
def test_zone_redundancy_on_premium_v2_or_v3_with_three_instances_is_accepted(infra, sku):
    assert load(infra, {"sku": sku, "zoneRedundant": True, "instanceCount": 3}).zone_redundant is True


@pytest.mark.parametrize(("sku", "tier"), [("B1", "Basic"), ("S2", "Standard")])
def test_zone_redundancy_on_a_tier_without_zones_names_the_feature_and_the_tier_it_needs(infra, sku, tier):
    config = {"sku": sku, "zoneRedundant": True, "instanceCount": 3, "autoscale": False, "stagingSlot": False}
    (found,) = problems(infra, config)
    assert found == (
        f"mcpscale-azure:zoneRedundant = 'true' is not allowed: zone redundancy needs a Premium v2 or v3 sku, "
        f"and sku {sku} is {tier}; choose e.g. P0v3, or set zoneRedundant false"
    )


@pytest.mark.parametrize("count", [1, 2])
def test_zone_redundancy_needs_three_instances(infra, count):
    (found,) = problems(infra, {"zoneRedundant": True, "instanceCount": count})
    assert found.startswith("mcpscale-azure:zoneRedundant = 'true' is not allowed: zone redundancy needs at least 3")
    assert f"instanceCount is {count}" in found


def test_the_dev_stack_validates_with_every_feature_basic_lacks_off(infra):
    settings = load(infra, infra.stack_config("dev"))
    assert settings.sku.tier.name == "Basic"
    assert (settings.autoscale, settings.staging_slot, settings.zone_redundant) == (False, False, False)


def test_allowed_origins_are_scheme_host_port(infra):
    settings = load(infra, {"allowedOrigins": "https://a.example.com, http://localhost:6274"})
    assert settings.allowed_origins == ("https://a.example.com", "http://localhost:6274")
    (found,) = problems(infra, {"allowedOrigins": "https://a.example.com/path,*"})
    assert found.endswith("bad: https://a.example.com/path, *")


def test_resource_group_name_follows_azure_naming(infra):
    assert load(infra, {"resourceGroupName": "platform-mcp_rg(1)"}).resource_group_name == "platform-mcp_rg(1)"
    for bad in ["ends.with.dot.", "has space", "x" * 91]:
        (found,) = problems(infra, {"resourceGroupName": bad})
        assert found.startswith(f"mcpscale-azure:resourceGroupName = {bad!r} is not allowed: expected an existing")


def test_location_is_required(infra):
    with pytest.raises(ConfigError) as raised:
        infra.run(McpFleetArgs.from_config, {})
    assert raised.value.problems == [
        (
            "azure-native:location is not set: expected an Azure region, "
            "e.g. `pulumi config set azure-native:location westeurope`"
        )
    ]


def test_every_problem_is_reported_at_once(infra):
    found = problems(infra, {"instanceCount": "three", "sku": "Z9", "pythonVersion": "2.7", "autoscale": "maybe"})
    assert [p.split(" = ")[0] for p in found] == [
        "mcpscale-azure:instanceCount",
        "mcpscale-azure:sku",
        "mcpscale-azure:pythonVersion",
        "mcpscale-azure:autoscale",
    ]


def test_a_team_server_is_read_from_server_and_server_source(infra, tmp_path):
    folder = write_team_server(tmp_path / "acme")
    settings = load(infra, {"server": SERVER, "serverSource": str(folder)})
    assert settings.server == ServerSource(SERVER, folder)


@pytest.mark.parametrize(
    ("config", "key", "allowed"),
    [
        ({"server": "acme_tools.server"}, "server", "expected MODULE:ATTR"),
        ({"server": SERVER}, "server", "module 'acme_tools.server' is not in the host package (app/)"),
        ({"server": SERVER, "serverSource": "/nonexistent/acme"}, "serverSource", "/nonexistent/acme is not a folder"),
    ],
)
def test_bad_server_values_name_key_value_and_what_is_allowed(infra, config, key, allowed):
    (found,) = problems(infra, config)
    assert found.startswith(f"mcpscale-azure:{key} = {config[key]!r} is not allowed: {allowed}")


def test_server_problems_are_reported_with_the_others(infra):
    found = problems(infra, {"instanceCount": 0, "server": "not a spec"})
    assert [p.split(" = ")[0] for p in found] == ["mcpscale-azure:instanceCount", "mcpscale-azure:server"]


def test_workers_per_instance_follow_the_sku_cores(infra):
    assert load(infra, {"sku": "P0v3"}).workers_per_instance == 1
    assert load(infra, {"sku": "P1v3"}).workers_per_instance == 2
    assert load(infra, {"sku": "P2v3"}).workers_per_instance == 4


def test_workbook_name_is_a_stable_guid_per_stack():
    name = workbook_name("mcpscale-azure", "prod")
    assert str(uuid.UUID(name)) == name
    assert name == workbook_name("mcpscale-azure", "prod")
    assert name != workbook_name("mcpscale-azure", "dev")


EASY_AUTH = {
    "authClientId": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
    "authTenantId": "11111111-2222-3333-4444-555555555555",
}


@pytest.mark.parametrize("value", ['{"tally": ["Tally.Use"], "compute_primes": ["A", "B"]}', {"tally": ["Tally.Use"]}])
def test_tool_roles_as_json_text_or_a_config_object_are_read(infra, value):
    settings = load(infra, {**EASY_AUTH, "toolRoles": value})
    assert settings.tool_roles["tally"] == ("Tally.Use",)


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ('["tally"]', "expected a JSON object of tool name -> non-empty list of Entra app role names"),
        ("tally=Admin", "expected a JSON object of tool name -> non-empty list of Entra app role names"),
        ('{"tally": []}', "; bad: tally"),
        ('{"tally": "Admin", "echo": ["Admin"]}', "; bad: tally"),
        ('{"tally": ["Admin", " "]}', "; bad: tally"),
        (
            '{"tallly": ["Admin"]}',
            "unknown tool(s) tallly; the bundled server's tools are whoami, echo, lookup_fact, compute_primes, "
            "tally, pick_fact",
        ),
    ],
)
def test_bad_tool_roles_name_key_value_and_what_is_allowed(infra, value, needle):
    (problem,) = problems(infra, {**EASY_AUTH, "toolRoles": value})
    assert problem.startswith(f"mcpscale-azure:toolRoles = {value!r} is not allowed: ")
    assert needle in problem


def test_tool_roles_without_easy_auth_are_rejected(infra):
    (problem,) = problems(infra, {"toolRoles": '{"tally": ["Tally.Use"]}'})
    assert "only used with Easy Auth; set authClientId and authTenantId" in problem


def test_the_bundled_server_tools_are_the_demos():
    import asyncio

    from app.demo.server import server

    assert sorted(BUNDLED_SERVER_TOOLS) == sorted(tool.name for tool in asyncio.run(server.list_tools()))


@pytest.mark.parametrize(
    "value",
    [
        '{"*": {"perCaller": "600/minute"}, "compute_primes": {"perCaller": "10/minute", "total": "1000/minute"}}',
        {"*": {"perCaller": "600/minute"}, "compute_primes": {"perCaller": "10/minute", "total": "1000/minute"}},
    ],
)
def test_rate_limits_as_json_text_or_a_config_object_are_read_by_the_apps_parser(infra, value):
    from app.ratelimit.spec import Rate

    limits = load(infra, {"rateLimits": value}).rate_limits
    assert set(limits) == {"*", "compute_primes"}
    assert limits["*"].per_caller == Rate(600, 60) and limits["*"].total is None
    assert (limits["compute_primes"].per_caller, limits["compute_primes"].total) == (Rate(10, 60), Rate(1000, 60))


def test_rate_limits_are_off_by_default_and_fail_open(infra):
    settings = load(infra)
    assert settings.rate_limits == {}
    assert settings.rate_limits_fail_closed is False
    assert settings.redis_sku == "Balanced_B0"


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("compute_primes=10/minute", "rateLimits is not JSON"),
        ('["compute_primes"]', "rateLimits is a JSON list; expected a JSON object of tool name (or '*')"),
        ('{"echo": {"perCaller": "10/minute", "perUser": "1/second"}}', "has the unknown key(s) 'perUser'"),
        ('{"echo": {"perCaller": "ten/minute"}}', "rateLimits['echo'].perCaller is 'ten/minute'; expected 'N/second'"),
        ('{"echo": {"total": "0/minute"}}', "rateLimits['echo'].total allows 0 calls"),
        ('{"echo": {"total": "5/day"}}', "rateLimits['echo'].total has the unit 'day'"),
        ('{"echo": {}}', "rateLimits['echo'] is {}"),
    ],
)
def test_bad_rate_limits_name_key_value_and_what_is_allowed(infra, value, needle):
    (problem,) = problems(infra, {"rateLimits": value})
    assert problem.startswith(f"mcpscale-azure:rateLimits = {value!r} is not allowed: ")
    assert needle in problem


def test_rate_limits_on_a_tool_the_bundled_server_lacks_are_refused(infra):
    (problem,) = problems(infra, {"rateLimits": '{"*": {"total": "5/second"}, "compute_prime": {"total": "1/second"}}'})
    assert problem == (
        "mcpscale-azure:rateLimits = "
        """'{"*":{"total":"5/second"},"compute_prime":{"total":"1/second"}}' is not allowed: """
        "rateLimits names tool(s) the server does not have: compute_prime; its tools: compute_primes, echo, "
        "lookup_fact, pick_fact, tally, whoami (or '*' for every tool)"
    )


def test_rate_limits_on_a_team_servers_tools_are_left_to_its_start_up_check(infra, tmp_path):
    folder = write_team_server(tmp_path / "acme")
    config = {"server": SERVER, "serverSource": str(folder), "rateLimits": '{"to_roman": {"perCaller": "5/second"}}'}
    assert set(load(infra, config).rate_limits) == {"to_roman"}


def test_fail_closed_without_rate_limits_is_refused(infra):
    (problem,) = problems(infra, {"rateLimitsFailClosed": "true"})
    assert problem == (
        "mcpscale-azure:rateLimitsFailClosed = 'true' is not allowed: only used with rate limits; "
        "set rateLimits or unset it"
    )


def test_a_redis_sku_outside_azure_managed_redis_is_refused(infra):
    (problem,) = problems(infra, {"redisSku": "Enterprise_E10"})
    assert problem.startswith("mcpscale-azure:redisSku = 'Enterprise_E10' is not allowed: expected one of Balanced_B0")


def test_bad_rate_limits_fail_before_any_resource_registers(infra):
    with pytest.raises(ConfigError) as raised:
        infra.run_main({**infra.stack_config("prod"), "rateLimits": '{"echo": {"perCaller": "10/fortnight"}}'})
    (problem,) = raised.value.problems
    assert "rateLimits['echo'].perCaller has the unit 'fortnight'" in problem
    assert infra.last.resources == []
def test_regions_are_a_primary_then_others_each_with_a_stamp(infra):
    settings = load(infra, {"regions": "westeurope, northeurope,swedencentral", "frontDoor": True})
    assert settings.regions == settings.stamp_regions == ("westeurope", "northeurope", "swedencentral")


@pytest.mark.parametrize(
    ("regions", "message"),
    [
        ("westeurope,northeurop", "unknown: northeurop (did you mean northeurope?)"),
        ("westeurope,West Europe", "unknown: West Europe (did you mean westeurope?)"),
        ("westeurope,francesouth", "unknown: francesouth (did you mean koreasouth?)"),  # open on request only
        ("westeurope,northeurope,westeurope", "expected each region once; repeated: westeurope"),
        (
            "westeurope,northeurope,swedencentral,uksouth,francecentral,germanywestcentral",
            "expected at most 5 regions, got 6",
        ),
    ],
)
def test_unknown_repeated_or_too_many_regions_are_rejected(infra, regions, message):
    (found,) = problems(infra, {"regions": regions, "frontDoor": True})
    assert found.startswith(f"mcpscale-azure:regions = {regions!r} is not allowed: ")
    assert found.endswith(message)


def test_the_first_region_is_the_location(infra):
    (found,) = problems(infra, {"regions": "northeurope,westeurope", "frontDoor": True})
    assert found == (
        "mcpscale-azure:regions = 'northeurope,westeurope' is not allowed: the first region is the primary, which "
        "holds what the regions share, and must be azure-native:location (westeurope); list it first"
    )


def test_several_regions_need_front_door(infra):
    (found,) = problems(infra, {"regions": "westeurope,northeurope"})
    assert found == (
        "mcpscale-azure:frontDoor = 'false' is not allowed: 2 regions need Azure Front Door as their one entry; "
        "set frontDoor true"
    )
    assert load(infra, {"frontDoor": True}).stamp_regions == ("westeurope",)  # one region may have it too


def test_front_door_sku_is_standard_or_premium_and_only_with_front_door(infra):
    assert load(infra, {"frontDoor": True, "frontDoorSku": "Premium"}).front_door_sku == "Premium"
    (found,) = problems(infra, {"frontDoor": True, "frontDoorSku": "Classic"})
    assert found.endswith("expected one of Standard, Premium")
    (found,) = problems(infra, {"frontDoorSku": "Premium"})
    assert found == (
        "mcpscale-azure:frontDoorSku = 'Premium' is not allowed: only used with Front Door; set frontDoor true"
    )


@pytest.mark.parametrize(
    ("location", "regions", "without"),
    [("westeurope", "westeurope,ukwest", "ukwest"), ("westus", "", "westus")],
)
def test_zone_redundancy_in_a_region_without_zones_is_rejected(infra, location, regions, without):
    config = {"azure-native:location": location, "regions": regions, "frontDoor": bool(regions)}
    (found,) = problems(infra, {**config, "zoneRedundant": True})
    assert found == (
        f"mcpscale-azure:zoneRedundant = 'true' is not allowed: zone redundancy needs a region with availability "
        f"zones, and {without} has none (components/regions.py); choose other regions or set zoneRedundant false"
    )
    assert load(infra, {**config, "zoneRedundant": False}).zone_redundant is False
