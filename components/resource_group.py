"""The resource group everything lives in.

By default the stack creates its own group (auto-named, tagged, deleted with
the stack). Teams whose groups are handed out by a platform team set
``resourceGroupName`` to an existing group instead; the stack then neither
creates nor deletes it.
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
from pulumi_azure_native import resources


def resource_group(
    location: str, existing: str | None, tags: Mapping[str, str], opts: pulumi.ResourceOptions | None = None
) -> pulumi.Output[str]:
    """Name of the group to deploy into: ``existing`` when given, else a new one in ``location``."""
    if existing is not None:
        return pulumi.Output.from_input(existing)
    group = resources.ResourceGroup(
        "rg",
        location=location,
        tags={**tags, "component": "resource-group"},
        opts=opts,
    )
    return group.name
