"""Secrets: the key rings as Key Vault secrets (RBAC vault, soft delete, purge protection) and their references."""

from __future__ import annotations

import pulumi
import pytest

from components.roles import KEY_VAULT_SECRETS_USER
from components.secrets import Secrets, SecretsArgs, key_rings
from tests.infra.builders import TAGS
from tests.infra.conftest import TENANT

VAULT = "azure-native:keyvault:Vault"
SECRET = "azure-native:keyvault:Secret"
PASSWORD = "random:index/randomPassword:RandomPassword"
HANDLE_RING = "k2:" + "h" * 40
REQUEST_STATE_RING = "r1:" + "s" * 40


def run_secrets(
    infra, handle_keys=None, request_state_keys=None, purge_protection=True, private_network_only=False, sink=None
):
    def program():
        rings = key_rings(handle_keys, request_state_keys, pulumi.ResourceOptions())
        secrets = Secrets(
            "secrets",
            SecretsArgs(
                resource_group_name="rg-mcp",
                location="westeurope",
                handle_keys=rings["MCP_HANDLE_KEYS"],
                request_state_keys=rings["MCP_REQUEST_STATE_KEYS"],
                purge_protection=purge_protection,
                tags=TAGS,
                private_network_only=private_network_only,
            ),
        )
        if sink is not None:
            sink.append(secrets)

    return infra.run(program)


def secrets_by_name(run):
    return {s.get("secretName"): s for s in run.of_type(SECRET)}


def test_the_vault_authorizes_by_azure_roles_with_soft_delete_and_purge_protection(infra):
    vault = run_secrets(infra).one(VAULT)
    assert vault.inputs == {
        "resourceGroupName": "rg-mcp",
        "location": "westeurope",
        "properties": {
            "tenantId": TENANT,
            "sku": {"family": "A", "name": "standard"},
            "enableRbacAuthorization": True,
            "enableSoftDelete": True,
            "softDeleteRetentionInDays": 90,
            "enablePurgeProtection": True,
            # The SDK's defaults: public endpoint (App Service reaches the vault
            # without a VNet), no VM, disk or template access.
            "publicNetworkAccess": "enabled",
            "enabledForDeployment": False,
            "enabledForDiskEncryption": False,
            "enabledForTemplateDeployment": False,
        },
        "tags": {**TAGS, "component": "secrets"},
    }


def test_purge_protection_off_is_left_out_since_the_api_refuses_false(infra):
    properties = run_secrets(infra, purge_protection=False).one(VAULT).get("properties")
    assert "enablePurgeProtection" not in properties
    assert properties["enableSoftDelete"] is True


def test_a_private_network_only_vault_refuses_public_traffic_and_lets_no_service_bypass_its_firewall(infra):
    run = run_secrets(infra, private_network_only=True)
    properties = run.one(VAULT).get("properties")
    assert properties["publicNetworkAccess"] == "disabled"
    assert properties["networkAcls"] == {"defaultAction": "Deny", "bypass": "None"}
    # The key rings are still written by the program: through ARM, which the data plane's firewall does not cover.
    assert {s.get("secretName") for s in run.of_type(SECRET)} == {"mcp-handle-keys", "mcp-request-state-keys"}


@pytest.mark.parametrize(("purge_protection", "days"), [(True, 90), (False, 7)])
def test_a_vault_that_can_be_purged_keeps_deleted_secrets_the_shortest_time_key_vault_allows(
    infra, purge_protection, days
):
    vault = run_secrets(infra, purge_protection=purge_protection).one(VAULT)
    assert vault.get("properties.softDeleteRetentionInDays") == days


def test_the_retention_of_an_existing_vault_is_left_as_it_was_created(infra):
    # Key Vault fixes it at creation; a vault created with 90 days keeps them when the program now says 7.
    vault = run_secrets(infra, purge_protection=False).one(VAULT)
    assert vault.ignore_changes == ["properties.softDeleteRetentionInDays"]


def test_configured_rings_are_stored_as_secrets_and_nothing_is_generated(infra):
    run = run_secrets(
        infra,
        handle_keys=pulumi.Output.secret(HANDLE_RING),
        request_state_keys=pulumi.Output.secret(REQUEST_STATE_RING),
    )
    assert run.of_type(PASSWORD) == []
    vault = run.one(VAULT)
    secrets = secrets_by_name(run)
    assert set(secrets) == {"mcp-handle-keys", "mcp-request-state-keys"}
    assert secrets["mcp-handle-keys"].get("properties.value") == HANDLE_RING
    assert secrets["mcp-request-state-keys"].get("properties.value") == REQUEST_STATE_RING
    for secret in secrets.values():
        assert secret.is_secret("properties.value")
        assert secret.get("vaultName") == vault.outputs["name"]
        assert vault.urn in secret.property_dependencies["vaultName"]


@pytest.mark.parametrize("given", ["handle", "request_state", None])
def test_each_ring_left_unset_is_one_generated_key_kept_secret(infra, given):
    run = run_secrets(
        infra,
        handle_keys=HANDLE_RING if given == "handle" else None,
        request_state_keys=REQUEST_STATE_RING if given == "request_state" else None,
    )
    passwords = {p.name: p for p in run.of_type(PASSWORD)}
    expected = {
        "handle": ["secrets-mcp-request-state-keys-generated"],
        "request_state": ["secrets-mcp-handle-keys-generated"],
        None: ["secrets-mcp-handle-keys-generated", "secrets-mcp-request-state-keys-generated"],
    }[given]
    assert sorted(passwords) == expected
    for name, password in passwords.items():
        assert password.inputs == {"length": 48, "special": False}
        secret = secrets_by_name(run)[name.removeprefix("secrets-").removesuffix("-generated")]
        assert secret.get("properties.value") == f"k1:{password.outputs['result']}"
        assert secret.is_secret("properties.value")


def test_a_plain_ring_is_still_sent_as_a_secret(infra):
    run = run_secrets(infra, handle_keys=HANDLE_RING, request_state_keys=REQUEST_STATE_RING)
    assert all(s.is_secret("properties.value") for s in run.of_type(SECRET))


def test_app_settings_are_versionless_key_vault_references_that_wait_for_the_secrets(infra):
    sink = []
    run = run_secrets(infra, sink=sink)
    uri = run.one(VAULT).outputs["properties"]["vaultUri"]
    seen = {}

    async def resolve():
        for name, value in sink[0].app_settings.items():
            urns = {await r.urn.future() for r in await value.resources()}
            seen[name] = (await value.future(), await value.is_secret(), urns)

    infra.run(resolve)
    secrets = secrets_by_name(run)
    assert seen == {
        "MCP_HANDLE_KEYS": (
            f"@Microsoft.KeyVault(SecretUri={uri}secrets/mcp-handle-keys/)",
            False,
            {run.one(VAULT).urn, secrets["mcp-handle-keys"].urn},
        ),
        "MCP_REQUEST_STATE_KEYS": (
            f"@Microsoft.KeyVault(SecretUri={uri}secrets/mcp-request-state-keys/)",
            False,
            {run.one(VAULT).urn, secrets["mcp-request-state-keys"].urn},
        ),
    }


def test_readers_get_key_vault_secrets_user_on_the_vault(infra):
    sink = []
    run = run_secrets(infra, sink=sink)
    reader = sink[0].reader
    assert reader.role == KEY_VAULT_SECRETS_USER == "4633458b-17de-408a-b874-0445c86b69e6"
    seen = []

    async def resolve():
        seen.append(await pulumi.Output.from_input(reader.scope).future())

    infra.run(resolve)
    assert seen == [run.one(VAULT).outputs["id"]]


def test_everything_is_a_child_of_the_secrets_component(infra):
    run = run_secrets(infra)
    component = run.one("mcpscale:azure:Secrets")
    assert sorted(r.type for r in run.children_of(component)) == sorted([VAULT, SECRET, SECRET])
    # The generated rings are made once, outside any region's vault (key_rings), so every vault gets the same.
    assert len(run.of_type(PASSWORD)) == 2 and not any(p.parent == component.urn for p in run.of_type(PASSWORD))
