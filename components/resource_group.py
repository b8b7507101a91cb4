"""The resource group everything lives in.

By default the stack creates its own group (auto-named, tagged, deleted with
the stack). Teams whose groups are handed out by a platform team set
``resourceGroupName`` to an existing group instead; the stack then neither
creates nor deletes it.
"""

from __future__ import annotations

import pulumi
from pulumi_azure_native import resources

from components.settings import StackSettings


def resource_group(settings: StackSettings) -> pulumi.Output[str]:
    """Name of the group to deploy into: the configured one, or a new one."""
    if settings.resource_group_name is not None:
        return pulumi.Output.from_input(settings.resource_group_name)
    group = resources.ResourceGroup(
        "rg",
        location=settings.location,
        tags={**settings.tags, "component": "resource-group"},
    )
    return group.name
