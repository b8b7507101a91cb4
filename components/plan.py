"""The App Service plan: the Linux instances the site and its slot run on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
from pulumi_azure_native import web

from components.settings import Sku

# The stack output the program exports the plan's id under; the next
# deployment reads it back to find the live plan (see :func:`previous_plan_id`).
PLAN_ID_OUTPUT = "planId"


@dataclass(frozen=True)
class PlanArgs:
    resource_group_name: pulumi.Input[str]
    location: str
    sku: Sku
    instance_count: int
    # When autoscale owns the instance count, an update must not lower it.
    autoscale: bool
    zone_redundant: bool
    # The plan's id from this stack's last deployment, None before the first.
    previous_plan_id: pulumi.Input[str | None] | None
    tags: Mapping[str, str]


def previous_plan_id() -> pulumi.Output[str | None]:
    """The plan id this stack exported at its last deployment (None before there was one).

    A stack exists while its own program runs (``pulumi stack init`` made it),
    so a reference to it reads the outputs of its last completed deployment.
    """
    own_stack = f"{pulumi.get_organization()}/{pulumi.get_project()}/{pulumi.get_stack()}"
    return pulumi.StackReference(own_stack).get_output(PLAN_ID_OUTPUT)


def _at_least_live(plan_id: str | None, instance_count: int) -> int:
    if not plan_id:
        return instance_count
    parts = plan_id.split("/")
    try:
        # The plain invoke, not get_app_service_plan_output: a failed output invoke fails the whole program
        # when it exits, caught or not, while this one raises here and nowhere else.
        live = web.get_app_service_plan(resource_group_name=parts[4], name=parts[8])
    except Exception as error:  # noqa: BLE001 - whatever failed, instanceCount is a capacity the plan can take
        # azure-native passes ARM's answer on; a plan deleted out of band answers "RESPONSE 404 ... ResourceNotFound".
        reason = "it no longer exists" if "RESPONSE 404" in str(error) else f"reading it failed: {error}"
        pulumi.log.warn(
            f"the plan this stack last deployed ({plan_id}) has no live capacity to keep: {reason}; "
            f"sending instanceCount ({instance_count}) as its capacity"
        )
        return instance_count
    return max(instance_count, (live.sku.capacity if live.sku else None) or 0)


class Plan(pulumi.ComponentResource):
    """A reserved (Linux) plan with ``instance_count`` instances.

    With autoscale on, autoscale moves ``sku.capacity`` between instanceCount
    and autoscaleMaxCount, and Azure's plan PUT takes the capacity with every
    update (a tag, the sku). ``ignore_changes`` would send the capacity
    recorded in state, resetting a scaled-out plan; so on every deployment
    after the first the plan's live capacity is read and the larger of it and
    instanceCount is sent: an update never scales in, a no-op ``pulumi up``
    never fights autoscale, and a raised instanceCount takes effect at once.
    A plan that cannot be read (deleted out of band, or the read fails) gets
    instanceCount and a warning, so that ``pulumi up`` and ``preview`` still run.
    """

    id: pulumi.Output[str]
    name: pulumi.Output[str]

    def __init__(self, name: str, args: PlanArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mcpscale:azure:Plan", name, None, opts)
        capacity: pulumi.Input[int] = args.instance_count
        if args.autoscale and args.previous_plan_id is not None:
            capacity = pulumi.Output.from_input(args.previous_plan_id).apply(
                lambda plan_id: _at_least_live(plan_id, args.instance_count)
            )
        plan = web.AppServicePlan(
            name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            kind="linux",
            reserved=True,
            per_site_scaling=False,
            zone_redundant=args.zone_redundant,
            sku=web.SkuDescriptionArgs(name=args.sku.name, tier=args.sku.azure_tier, capacity=capacity),
            tags={**args.tags, "component": "plan"},
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.id = plan.id
        self.name = plan.name
        self.register_outputs({"id": self.id, "name": self.name})
