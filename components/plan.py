"""The App Service plan: the Linux instances the site and its slot run on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
from pulumi_azure_native import web

from components.settings import Sku


@dataclass(frozen=True)
class PlanArgs:
    resource_group_name: pulumi.Input[str]
    location: str
    sku: Sku
    instance_count: int
    # When autoscale owns the instance count, Pulumi must stop resetting it.
    autoscale: bool
    tags: Mapping[str, str]


class Plan(pulumi.ComponentResource):
    """A reserved (Linux) plan with ``instance_count`` instances.

    With autoscale on, ``sku.capacity`` is only the initial count: autoscale
    moves it between instanceCount and autoscaleMaxCount, and without
    ``ignore_changes`` every ``pulumi up`` would fight autoscale back to
    instanceCount. The autoscale minimum (= instanceCount) still applies a
    new instanceCount on the next ``pulumi up``.
    """

    id: pulumi.Output[str]
    name: pulumi.Output[str]

    def __init__(self, name: str, args: PlanArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mcpscale:azure:Plan", name, None, opts)
        plan = web.AppServicePlan(
            name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            kind="linux",
            reserved=True,
            per_site_scaling=False,
            sku=web.SkuDescriptionArgs(
                name=args.sku.name,
                tier=args.sku.tier.name,
                capacity=args.instance_count,
            ),
            tags={**args.tags, "component": "plan"},
            opts=pulumi.ResourceOptions(
                parent=self,
                ignore_changes=["sku.capacity"] if args.autoscale else None,
            ),
        )
        self.id = plan.id
        self.name = plan.name
        self.register_outputs({"id": self.id, "name": self.name})
