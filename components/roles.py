"""Azure RBAC (and data-plane access) for the system identities of the site and the staging slot.

A component that owns a resource the app must reach (the Key Vault, the
Application Insights component) publishes a :class:`RoleGrant`; the site and
the slot each turn every grant into a role assignment for their own identity
with :func:`assign`, so the two slots always hold the same access. A resource
whose data plane has its own access list instead of RBAC (Azure Managed
Redis's access policy assignments) publishes a :class:`Grant` of its own kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import pulumi
from pulumi_azure_native import authorization

# Built-in role definition ids (the same in every tenant).
KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
MONITORING_METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"


class Grant(Protocol):
    """Access for an identity to hold, turned into a resource per identity by :func:`assign`."""

    label: str
    """Short name for the resource's logical name, e.g. ``secrets-user``."""

    def assign_to(
        self, name: str, principal_id: pulumi.Input[str], opts: pulumi.ResourceOptions
    ) -> pulumi.CustomResource: ...


@dataclass(frozen=True)
class RoleGrant:
    """A built-in role on one resource, for an identity to hold."""

    label: str
    """Short name for the assignment's logical name, e.g. ``secrets-user``."""
    scope: pulumi.Input[str]
    """Resource id the role applies to."""
    role: str
    """Built-in role definition id (a GUID)."""

    def assign_to(
        self, name: str, principal_id: pulumi.Input[str], opts: pulumi.ResourceOptions
    ) -> authorization.RoleAssignment:
        return authorization.RoleAssignment(
            f"{name}-{self.label}",
            scope=self.scope,
            role_definition_id=pulumi.Output.from_input(self.scope).apply(lambda s: role_definition_id(s, self.role)),
            principal_id=principal_id,
            # A new identity may not have replicated yet; with the type given,
            # Azure does not look the principal up, so the assignment succeeds.
            principal_type=authorization.PrincipalType.SERVICE_PRINCIPAL,
            opts=opts,
        )


def role_definition_id(scope: str, role: str) -> str:
    """The role definition's id in the subscription that holds ``scope``."""
    subscription = "/".join(scope.split("/")[:3])  # "/subscriptions/<id>"
    return f"{subscription}/providers/Microsoft.Authorization/roleDefinitions/{role}"


def assign(
    name: str, grant: Grant, principal_id: pulumi.Input[str], opts: pulumi.ResourceOptions
) -> pulumi.CustomResource:
    """``grant`` for the service principal ``principal_id`` (a site's or slot's system identity)."""
    return grant.assign_to(name, principal_id, opts)
