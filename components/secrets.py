"""The app's key rings in Key Vault, read by site and slot through Key Vault references.

Two rings, both ``kid:secret[,kid:secret...]`` (first key seals, all keys
open): ``MCP_HANDLE_KEYS`` seals tool handles and ``MCP_REQUEST_STATE_KEYS``
seals multi-round ``requestState``. Each comes from its secret config key or,
unset, is one generated key kept (encrypted) in the stack state
(:func:`key_rings`, once per fleet: every region's vault holds the same
rings, so a handle sealed in one region opens in all). They are
Key Vault secrets; the app settings hold only
``@Microsoft.KeyVault(SecretUri=...)`` references, which App Service resolves
with the site's (and the slot's) system identity, so the settings and every
diff of ``siteConfig`` show no secret.

The references carry no secret version: App Service resolves the latest
version, caches it and fetches it again every 24 hours, at once on any
configuration change of the app, or on a POST to the site's (or slot's)
``config/configreferences/appsettings/refresh``
(learn.microsoft.com/azure/app-service/app-service-key-vault-references,
"Understand rotation"). A new ring therefore reaches both slots at the
latest a day after ``pulumi up`` writes it, at once after that refresh
(docs/operations.md: "Key Vault and rotating keys").

The site's identity exists only once the site does, so its grants come after
it; the app settings holding the references come after the grants
(components/site_config.py), and before any code is deployed the delivery
refreshes the references and waits until each one is resolved
(components/delivery.py): role assignments can take minutes to apply, and an
unresolved reference would reach the app as its literal text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_random
from pulumi_azure_native import authorization, keyvault

from app.contract import HANDLE_KEYS_ENV, REQUEST_STATE_KEYS_ENV
from components.roles import KEY_VAULT_SECRETS_USER, RoleGrant

# Key id of a generated key; set the config key to rotate (docs/operations.md: "Key Vault and rotating keys").
GENERATED_KEY_ID = "k1"
GENERATED_SECRET_LENGTH = 48
# Soft-delete retention by purge protection. With it (production) the longest Key Vault allows: a deleted secret
# or vault stays recoverable, and cannot be purged, for 90 days. Without it the stack is a throw-away one, and the
# shortest: a torn-down dev vault holds its name (vault names are global) for 7 days unless purged. Key Vault fixes
# the retention when the vault is created ("The retention policy interval can only be configured during key vault
# creation and can't be changed afterwards": learn.microsoft.com/azure/key-vault/general/soft-delete-overview).
SOFT_DELETE_RETENTION_DAYS = {True: 90, False: 7}
# So an existing vault keeps the retention it was created with: the program sends no change Azure cannot make.
FIXED_AT_CREATION = ["properties.softDeleteRetentionInDays"]

# App setting the app reads -> Key Vault secret name.
KEY_RINGS = {
    HANDLE_KEYS_ENV: "mcp-handle-keys",
    REQUEST_STATE_KEYS_ENV: "mcp-request-state-keys",
}


@dataclass(frozen=True)
class SecretsArgs:
    resource_group_name: pulumi.Input[str]
    location: str
    # The rings (components/secrets.py key_rings): configured, or generated once for the fleet.
    handle_keys: pulumi.Input[str]
    request_state_keys: pulumi.Input[str]
    # Irreversible once on: Key Vault refuses to turn it off again. Also sets the soft-delete retention of a new
    # vault (SOFT_DELETE_RETENTION_DAYS).
    purge_protection: bool
    tags: Mapping[str, str]
    # Only private endpoints reach the vault's data plane (components/network.py adds one).
    private_network_only: bool = False
    # The vault's logical name (Pulumi auto-names it from this); None: ``<component name>-kv``.
    vault_label: str | None = None


# The data plane answers private endpoints only: public access off, and the firewall denies by default with no
# bypass for trusted services, none of which reads these secrets. The program's keyvault.Secret writes still
# work from an operator's machine outside the network: they are ARM (control plane) PUTs of
# Microsoft.KeyVault/vaults/secrets, and "Key Vault firewalls and virtual network rules only apply to the data
# plane ... deployment of secrets or keys through ARM templates [is] not affected" (Learn: "Virtual network
# service endpoints for Azure Key Vault"; MicrosoftDocs/azure-docs#68668: ARM writes secrets with bypass None,
# default action Deny and a private endpoint).
_PRIVATE_ONLY = {
    "public_network_access": "disabled",
    "network_acls": keyvault.NetworkRuleSetArgs(
        default_action=keyvault.NetworkRuleAction.DENY, bypass=keyvault.NetworkRuleBypassOptions.NONE
    ),
}


def key_rings(
    handle_keys: pulumi.Input[str] | None,
    request_state_keys: pulumi.Input[str] | None,
    opts: pulumi.ResourceOptions,
    generated_before: Sequence[pulumi.Input[str]] = (),
) -> dict[str, pulumi.Input[str]]:
    """App setting -> ring: each configured one, or one generated key (``k1:<48 characters>``), made once.

    ``opts`` are the generated passwords' (their parent); ``generated_before`` the URNs of the components that
    generated them in earlier versions of the program (each password aliases its old place under them, so a
    stack keeps its keys).
    """
    configured = {HANDLE_KEYS_ENV: handle_keys, REQUEST_STATE_KEYS_ENV: request_state_keys}
    rings: dict[str, pulumi.Input[str]] = {}
    for setting, ring in configured.items():
        if ring is None:
            key = pulumi_random.RandomPassword(
                f"secrets-{KEY_RINGS[setting]}-generated",
                length=GENERATED_SECRET_LENGTH,
                special=False,
                opts=pulumi.ResourceOptions.merge(
                    opts, pulumi.ResourceOptions(aliases=[pulumi.Alias(parent=urn) for urn in generated_before])
                ),
            )
            ring = pulumi.Output.concat(f"{GENERATED_KEY_ID}:", key.result)
        rings[setting] = ring
    return rings


def key_vault_reference(vault_uri: pulumi.Input[str], secret_name: pulumi.Input[str]) -> pulumi.Output[str]:
    """An app setting value App Service replaces with the latest version of the secret."""
    # The documented form is .../secrets/<name>/<version>; an empty version
    # (the trailing slash) is the latest one.
    return pulumi.Output.concat("@Microsoft.KeyVault(SecretUri=", vault_uri, "secrets/", secret_name, "/)")


class Secrets(pulumi.ComponentResource):
    """A Key Vault (RBAC authorization, soft delete, optional purge protection) optionally private, with the two key rings.

    Tearing a stack down soft-deletes its vault: the name stays taken, and the secrets recoverable, for the
    retention period, unless purged (``az keyvault purge``; refused while purge protection is on).
    """

    vault_id: pulumi.Output[str]
    vault_name: pulumi.Output[str]
    app_settings: dict[str, pulumi.Output[str]]
    """App setting name -> Key Vault reference, for site and slot alike."""
    reader: RoleGrant
    """What an identity needs to resolve the references: Key Vault Secrets User on the vault."""

    def __init__(self, name: str, args: SecretsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mcpscale:azure:Secrets", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = {**args.tags, "component": "secrets"}

        client = authorization.get_client_config_output(opts=pulumi.InvokeOutputOptions(parent=self))
        vault = keyvault.Vault(
            args.vault_label or f"{name}-kv",
            resource_group_name=args.resource_group_name,
            location=args.location,
            properties=keyvault.VaultPropertiesArgs(
                tenant_id=client.tenant_id,
                sku=keyvault.SkuArgs(family=keyvault.SkuFamily.A, name=keyvault.SkuName.STANDARD),
                # Access by Azure roles only (no access policies), so grants are role assignments.
                enable_rbac_authorization=True,
                enable_soft_delete=True,
                soft_delete_retention_in_days=SOFT_DELETE_RETENTION_DAYS[args.purge_protection],
                # The API refuses false once it was true, so "off" leaves it out.
                enable_purge_protection=True if args.purge_protection else None,
                **(_PRIVATE_ONLY if args.private_network_only else {}),
            ),
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=FIXED_AT_CREATION),
        )

        rings = {HANDLE_KEYS_ENV: args.handle_keys, REQUEST_STATE_KEYS_ENV: args.request_state_keys}
        self.app_settings = {}
        for setting, ring in rings.items():
            secret_name = KEY_RINGS[setting]
            secret = keyvault.Secret(
                f"{name}-{secret_name}",
                resource_group_name=args.resource_group_name,
                vault_name=vault.name,
                secret_name=secret_name,
                properties=keyvault.SecretPropertiesArgs(value=pulumi.Output.secret(ring)),
                tags=tags,
                opts=child,
            )
            # Through the secret's id, so whatever reads the reference waits for the secret.
            self.app_settings[setting] = key_vault_reference(
                vault.properties.vault_uri, secret.id.apply(lambda _, n=secret_name: n)
            )

        self.vault_id = vault.id
        self.vault_name = vault.name
        self.reader = RoleGrant("secrets-user", vault.id, KEY_VAULT_SECRETS_USER)
        self.register_outputs({"vaultId": self.vault_id, "vaultName": self.vault_name})
