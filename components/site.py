"""The production site: the WebApp serving the MCP endpoint, secure by default."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
from pulumi_azure_native import web

from components.auth import auth_settings
from components.roles import Grant, assign
from components.settings import EasyAuth
from components.site_config import AppConfig, app_settings_resource, basic_auth_publishing_off, web_app_args


@dataclass(frozen=True)
class SiteArgs:
    resource_group_name: pulumi.Input[str]
    location: str
    plan_id: pulumi.Input[str]
    app: AppConfig
    easy_auth: EasyAuth | None
    # Roles the site's system identity (and the slot's) must hold: reading the
    # key rings, publishing telemetry.
    grants: Sequence[Grant]
    tags: Mapping[str, str]
    # The integration subnet (components/network.py), shared with the slot; None: no virtual network.
    subnet_id: pulumi.Input[str] | None = None


def principal_id(app: web.WebApp | web.WebAppSlot) -> pulumi.Output[str]:
    """The object id of the app's system-assigned identity."""
    return app.identity.apply(lambda identity: identity.principal_id)


class Site(pulumi.ComponentResource):
    """WebApp + basic-auth publishing off (FTP and SCM) + its identity's roles + optional Easy Auth.

    Instances are interchangeable (the app is stateless), so client affinity
    is off and the platform load balancer spreads requests freely.
    """

    id: pulumi.Output[str]
    name: pulumi.Output[str]
    resource_group_name: pulumi.Output[str]
    default_host_name: pulumi.Output[str]
    url: pulumi.Output[str]
    location: str
    plan_id: pulumi.Input[str]
    easy_auth: EasyAuth | None
    app_config: AppConfig
    """The site's app config; the staging slot reuses it."""
    grants: Sequence[Grant]
    """The roles the identity holds; the staging slot's identity gets the same."""
    subnet_id: pulumi.Input[str] | None
    """The integration subnet; the slot joins the same one (one per plan)."""
    app_settings: web.WebAppApplicationSettings
    """The site's whole app-settings collection, created once the identity holds its roles."""

    def __init__(self, name: str, args: SiteArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mcpscale:azure:Site", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = {**args.tags, "component": "site"}

        site = web.WebApp(
            name,
            resource_group_name=args.resource_group_name,
            **web_app_args(args.app, args.plan_id, args.location, args.subnet_id),
            tags=tags,
            opts=child,
        )
        site_only = pulumi.ResourceOptions(parent=self, depends_on=[site])
        basic_auth_publishing_off(name, site.name, args.resource_group_name, slot=None, opts=site_only)
        grants = [assign(name, grant, principal_id(site), child) for grant in args.grants]
        # After the grants, so the Key Vault references are first resolved by an identity allowed to read them.
        self.app_settings = app_settings_resource(
            name,
            site.name,
            args.resource_group_name,
            args.app,
            slot=None,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[site, *grants]),
        )
        if args.easy_auth is not None:
            web.WebAppAuthSettingsV2(
                f"{name}-auth",
                name=site.name,
                resource_group_name=args.resource_group_name,
                **auth_settings(args.easy_auth, args.app.front_door_id is not None),
                opts=site_only,
            )

        self.id = site.id
        self.name = site.name
        self.resource_group_name = pulumi.Output.from_input(args.resource_group_name)
        self.location = args.location
        self.plan_id = args.plan_id
        self.easy_auth = args.easy_auth
        self.app_config = args.app
        self.grants = args.grants
        self.subnet_id = args.subnet_id
        self.default_host_name = site.default_host_name
        self.url = pulumi.Output.concat("https://", site.default_host_name)
        self.register_outputs(
            {"id": self.id, "name": self.name, "url": self.url, "resourceGroupName": self.resource_group_name}
        )
