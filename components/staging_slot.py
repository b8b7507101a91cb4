"""The staging slot: where new code lands and warms up before a swap promotes it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
from pulumi_azure_native import web

from components.auth import auth_settings
from components.roles import assign
from components.site import Site, principal_id
from components.site_config import (
    STAGING_SLOT,
    STICKY_APP_SETTINGS,
    app_settings_resource,
    basic_auth_publishing_off,
    web_app_args,
)


@dataclass(frozen=True)
class StagingSlotArgs:
    site: Site
    tags: Mapping[str, str]


class StagingSlot(pulumi.ComponentResource):
    """A slot of ``site`` with the same site config, from the same function.

    ``MCP_SLOT_NAME`` is sticky, so after a swap each slot still reports its
    own name; everything else (code, key rings, telemetry) travels with the
    swap, and both slots read the same Key Vault secrets, so handles and
    request state sealed before a swap still open after it. The slot has its
    own system identity, which gets the same roles as the site's.
    """

    slot_name: str
    id: pulumi.Output[str]
    url: pulumi.Output[str]
    resources: list[pulumi.Resource]
    """Everything the slot needs before code is deployed to it."""

    def __init__(self, name: str, args: StagingSlotArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mcpscale:azure:StagingSlot", name, None, opts)
        site = args.site
        self.slot_name = STAGING_SLOT

        slot = web.WebAppSlot(
            name,
            name=site.name,
            slot=STAGING_SLOT,
            resource_group_name=site.resource_group_name,
            **web_app_args(site.app_config, site.plan_id, site.location, site.subnet_id),
            tags={**args.tags, "component": "staging-slot"},
            opts=pulumi.ResourceOptions(parent=self),
        )
        slot_only = pulumi.ResourceOptions(parent=self, depends_on=[slot])
        # Slot-setting names are a property of the site (both slots), not of
        # the slot, and this resource sends the site's whole list: it owns
        # every sticky name, so STICKY_APP_SETTINGS is the only place to add one.
        sticky = web.WebAppSlotConfigurationNames(
            f"{name}-sticky-settings",
            name=site.name,
            resource_group_name=site.resource_group_name,
            app_setting_names=list(STICKY_APP_SETTINGS),
            opts=slot_only,
        )
        basic_auth = basic_auth_publishing_off(
            name, site.name, site.resource_group_name, slot=STAGING_SLOT, opts=slot_only
        )
        grants = [assign(name, grant, principal_id(slot), pulumi.ResourceOptions(parent=self)) for grant in site.grants]
        # After the slot's own grants (its identity resolves its references) and the sticky names, so the slot
        # setting is sticky from the first value it has.
        settings = app_settings_resource(
            name,
            site.name,
            site.resource_group_name,
            site.app_config,
            slot=STAGING_SLOT,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[slot, sticky, *grants]),
        )
        self.resources = [slot, sticky, *basic_auth, *grants, settings]
        if site.easy_auth is not None:
            self.resources.append(
                web.WebAppAuthSettingsV2Slot(
                    f"{name}-auth",
                    name=site.name,
                    slot=STAGING_SLOT,
                    resource_group_name=site.resource_group_name,
                    **auth_settings(site.easy_auth, site.app_config.front_door_id is not None),
                    opts=slot_only,
                )
            )

        self.id = slot.id
        self.url = pulumi.Output.concat("https://", slot.default_host_name)
        self.register_outputs({"id": self.id, "url": self.url, "slotName": self.slot_name})
