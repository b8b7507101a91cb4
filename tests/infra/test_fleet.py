"""McpFleet: a whole stack from another Pulumi program, through the components' public API, without stack config."""

from __future__ import annotations

import hashlib
from pathlib import Path, PurePosixPath
from typing import NamedTuple

import pulumi
import pytest

from app.ratelimit.spec import parse_rate_limits
from components.fleet import TYPE, McpFleet, McpFleetArgs
from components.package import PROJECT_ROOT, SERVER_FILE, build_package
from components.server_source import resolve_server_source
from components.settings import SKUS
from components.site_config import STARTUP_COMMAND
from tests.infra.builders import AUTH
from tests.infra.conftest import TENANT, StackRun
from tests.infra.engine_urns import identities
from tests.team_server import SERVER, write_team_server

WEBAPP = "azure-native:web:WebApp"
SLOT = "azure-native:web:WebAppSlot"
SETTINGS = ("azure-native:web:WebAppApplicationSettings", "azure-native:web:WebAppApplicationSettingsSlot")
VAULT = "azure-native:keyvault:Vault"
INSIGHTS = "azure-native:applicationinsights:Component"
AUTOSCALE = "azure-native:monitor:AutoscaleSetting"
COMMAND = "command:local:Command"

# What __main__.py registered at the stack's root before McpFleet existed: (type, logical name).
ROOT_CHILDREN_BEFORE_THE_FLEET = {
    ("azure-native:resources:ResourceGroup", "rg"),
    ("mcpscale:azure:Plan", "plan"),
    ("mcpscale:azure:Autoscale", "autoscale"),
    ("mcpscale:azure:Secrets", "secrets"),
    ("mcpscale:azure:Monitoring", "monitoring"),
    ("mcpscale:azure:Site", "mcp"),
    ("mcpscale:azure:StagingSlot", "staging"),
    ("mcpscale:azure:Operations", "operations"),
    ("mcpscale:azure:Delivery", "delivery"),
}
# Children the fleet gained after it existed: never at the root, so nothing to alias.
CHILDREN_SINCE_THE_FLEET = {("mcpscale:azure:Network", "network")}


class TeamStack(NamedTuple):
    run: StackRun
    folder: Path
    """The team's server folder."""
    program_folder: Path
    """Where the program ran."""


def app_settings(run) -> list[dict[str, str]]:
    """The app settings of the site and of the slot."""
    return [run.one(token).get("properties") for token in SETTINGS]


def under(run, registration, ancestor) -> bool:
    """True when ``ancestor`` is ``registration``'s parent, or its parent's, and so on."""
    by_urn = {r.urn: r for r in run.resources}
    parent = by_urn.get(registration.parent)
    while parent is not None:
        if parent.urn == ancestor.urn:
            return True
        parent = by_urn.get(parent.parent)
    return False


@pytest.fixture
def team_stack(infra, tmp_path, monkeypatch):
    """A program of a platform team's own, run in its own folder: one McpFleet for Acme's server, its values in
    code, no config at all."""
    folder = write_team_server(tmp_path / "acme")
    program_folder = tmp_path / "platform"
    program_folder.mkdir()
    monkeypatch.chdir(program_folder)

    def program() -> None:
        fleet = McpFleet(
            "acme",
            McpFleetArgs(
                location="northeurope",
                server=resolve_server_source(SERVER, str(folder)),
                sku=SKUS["P1v3"],
                instance_count=2,
                autoscale_max_count=4,
            ),
        )
        pulumi.export("mcpUrl", fleet.mcp_url)
        pulumi.export("stagingMcpUrl", fleet.staging_mcp_url)
        pulumi.export("packageSha256", fleet.package_sha256)
        pulumi.export("autoscaleRange", fleet.autoscale_range)

    return TeamStack(infra.run(program), folder, program_folder)


def test_every_resource_of_the_team_stack_is_a_child_of_the_fleet(team_stack):
    run = team_stack.run
    fleet = run.one(TYPE)
    for token in (WEBAPP, SLOT, VAULT, INSIGHTS, AUTOSCALE, COMMAND):
        assert run.of_type(token), token
    outside = [(r.type, r.name) for r in run.resources if r is not fleet and not under(run, r, fleet)]
    assert outside == []


def test_site_and_slot_serve_the_team_server_on_the_plan(team_stack):
    run = team_stack.run
    plan = run.one("azure-native:web:AppServicePlan")
    assert plan.get("sku") == {"name": "P1v3", "tier": "PremiumV3", "capacity": 2}
    site, slot = run.one(WEBAPP), run.one(SLOT)
    assert site.get("location") == slot.get("location") == "northeurope"
    assert site.get("serverFarmId") == plan.outputs["id"] == slot.get("serverFarmId")
    assert slot.get("slot") == "staging"
    for registration in (site, slot):
        assert registration.get("siteConfig.appCommandLine") == STARTUP_COMMAND
    for settings in app_settings(run):
        assert settings["WEB_CONCURRENCY"] == "2"  # P1v3 has two cores
    host = site.outputs["defaultHostName"]
    assert run.outputs["mcpUrl"].value == f"https://{host}/mcp"
    assert run.outputs["stagingMcpUrl"].value == f"https://{slot.outputs['defaultHostName']}/mcp"


def test_the_package_is_the_host_plus_the_team_folder(team_stack):
    run, folder, program_folder = team_stack.run, team_stack.folder, team_stack.program_folder
    expected = build_package(PROJECT_ROOT, PurePosixPath("dist/expected.zip"), source=folder, server=SERVER)
    assert {"acme_tools/server.py", SERVER_FILE} <= set(expected.entries)
    assert run.outputs["packageSha256"].value == expected.sha256
    # Where the deploy commands, running in the program's folder, look for it.
    assert hashlib.sha256((program_folder / "dist/app.zip").read_bytes()).hexdigest() == expected.sha256


def test_the_key_rings_live_in_an_rbac_key_vault_the_site_and_slot_reference(team_stack):
    run = team_stack.run
    vault = run.one(VAULT)
    assert vault.get("properties.enableRbacAuthorization") is True
    assert vault.get("properties.tenantId") == TENANT
    uri = vault.outputs["properties"]["vaultUri"]
    for settings in app_settings(run):
        assert settings["MCP_HANDLE_KEYS"] == (
            f"@Microsoft.KeyVault(SecretUri={uri}secrets/mcp-handle-keys/)"
        )


def test_telemetry_goes_to_workspace_based_app_insights_without_local_auth(team_stack):
    run = team_stack.run
    insights = run.one(INSIGHTS)
    assert insights.get("disableLocalAuth") is True
    assert insights.get("workspaceResourceId") == run.one("azure-native:operationalinsights:Workspace").outputs["id"]
    for settings in app_settings(run):
        assert settings["APPLICATIONINSIGHTS_CONNECTION_STRING"] == insights.outputs["connectionString"]


def test_autoscale_spans_the_instance_count_to_the_maximum_set_in_code(team_stack):
    run = team_stack.run
    setting = run.one(AUTOSCALE)
    assert setting.get("targetResourceUri") == run.one("azure-native:web:AppServicePlan").outputs["id"]
    (profile,) = setting.get("profiles")
    assert profile["capacity"] == {"minimum": "2", "default": "2", "maximum": "4"}
    assert run.outputs["autoscaleRange"].value == "2..4"


def test_delivery_deploys_the_team_package_to_staging_after_the_logs_flow(team_stack):
    run, folder = team_stack.run, team_stack.folder
    commands = {c.name: c for c in run.of_type(COMMAND)}
    assert set(commands) == {"delivery-staging-deploy", "delivery-production-deploy"}
    staging = commands["delivery-staging-deploy"]
    sha256 = build_package(PROJECT_ROOT, PurePosixPath("dist/expected.zip"), source=folder, server=SERVER).sha256
    environment = staging.get("environment")
    assert {k: environment[k] for k in ("SITE_ID", "PACKAGE_PATH", "PACKAGE_SHA256", "SLOT")} == {
        "SITE_ID": run.one(WEBAPP).outputs["id"],
        "PACKAGE_PATH": "dist/app.zip",
        "PACKAGE_SHA256": sha256,
        "SLOT": "staging",
    }
    diagnostics = {d.urn for d in run.of_type("azure-native:monitor:DiagnosticSetting")}
    assert len(diagnostics) == 2
    for command in commands.values():
        assert diagnostics <= command.dependencies, command.name


def test_args_set_in_code_default_to_a_stack_without_config(infra):
    compared = []

    def program() -> None:
        compared.append((McpFleetArgs(location="westeurope"), McpFleetArgs.from_config()))

    infra.run(program, {"azure-native:location": "westeurope"})
    ((in_code, from_config),) = compared
    assert in_code == from_config


@pytest.mark.parametrize(
    ("values", "problems"),
    [
        ({"sku": SKUS["B1"]}, ["autoscale = 'true'", "staging_slot = 'true'"]),
        ({"staging_slot": False, "swap": "1"}, ["swap = '1'"]),
        ({"instance_count": 2, "zone_redundant": True}, ["zone_redundant = 'true'"]),
        ({"cpu_scale_in_threshold": 60}, ["cpu_scale_in_threshold = '60'"]),  # 3 -> 4 -> 3 instances would flap
        ({"tool_roles": {"tally": ("Tally.Use",)}}, ['tool_roles = \'{"tally": ["Tally.Use"]}\'']),  # no Easy Auth
        ({"require_allowed_client_apps": True, "easy_auth": AUTH}, ["easy_auth = ''"]),  # open to any client app
        ({"rate_limits_fail_closed": True}, ["rate_limits_fail_closed = 'true'"]),  # no rate limits
        ({"rate_limits": {"tally": {"total": "1/second"}}}, ["rate_limits = \"{'tally': {'total': '1/second'}}\""]),
        (
            {"rate_limits": parse_rate_limits('{"tallly": {"total": "1/second"}}')},
            ['rate_limits = \'{"tallly":{"total":"1/second"}}\''],
        ),
    ],
)
def test_values_set_in_code_are_refused_as_config_values_are(infra, values, problems):
    with pytest.raises(ValueError) as raised:
        infra.run(lambda: McpFleet("acme", McpFleetArgs(location="westeurope", **values)))
    assert [line.split(" is not allowed")[0] for line in str(raised.value).splitlines()[1:]] == [
        f"  - {p}" for p in problems
    ]
    assert infra.last.resources == []


def test_the_stack_program_is_one_fleet_at_the_stack_root(infra):
    run = infra.run_main(infra.stack_config("prod"))
    fleet = run.one(TYPE)
    assert fleet.name == "mcp-fleet"
    assert [r.name for r in run.resources if r is not fleet and not under(run, r, fleet)] == []


def test_what_the_program_had_at_the_root_is_aliased_there_so_existing_stacks_are_not_replaced(infra):
    run = infra.run_main(infra.stack_config("prod"))
    known = {(i.type, i.name): i for i in identities(run)}
    for type_, name in ROOT_CHILDREN_BEFORE_THE_FLEET:
        # The URN it had at the stack's root, now under the fleet (and, for a stamp's part, under the stamp).
        assert f"urn:pulumi:test::mcpscale-azure::{type_}::{name}" in known[type_, name].aliases, name
    for type_, name in CHILDREN_SINCE_THE_FLEET:
        assert f"urn:pulumi:test::mcpscale-azure::mcpscale:azure:McpFleet${type_}::{name}" in known[type_, name].aliases
