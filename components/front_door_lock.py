"""What locks a site or slot to one Front Door profile, as arguments the site component takes.

Access restrictions: one Allow rule for the ``AzureFrontDoor.Backend``
service tag that also requires ``X-Azure-FDID`` to equal this profile's
``frontDoorId``, and deny for everything else. The service tag alone would
admit every Front Door profile of every tenant; the header is what makes it
this one (learn.microsoft.com/azure/frontdoor/origin-security, App Service
access restrictions). IP restrictions stay with their slot in a swap
(learn.microsoft.com/azure/app-service/deploy-staging-slots, settings that
aren't swapped), so the production site and the staging slot each get them.

The SCM site (Kudu, ``<app>.scm.azurewebsites.net``) keeps its own, open
restrictions (``scmIpSecurityRestrictionsUseMain`` false): zip deploy goes
there, not through Front Door, so inheriting the main rules would refuse
every deploy. It is not left unguarded: basic-auth publishing is off on site
and slot (components/site_config.py), so only an Entra ID token with a role
on the app can deploy.

Easy Auth behind Front Door: Front Door sends the site's own host name as
``Host`` (App Service routes by it, see components/front_door.py) and the
host the client asked for as ``X-Forwarded-Host``. With the forward proxy
convention ``Standard`` Easy Auth takes the request's URL from the
conventional forwarding headers (``Custom`` names other headers), so its
redirects and the URLs it builds, the published protected-resource metadata
among them, name the Front Door endpoint; ``NoProxy``, the default, would
name the origin, which refuses the client.
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi_azure_native import web

FRONT_DOOR_SERVICE_TAG = "AzureFrontDoor.Backend"
FRONT_DOOR_ID_HEADER = "x-azure-fdid"
ALLOW_FRONT_DOOR_RULE = "AllowFrontDoor"
ALLOW_FRONT_DOOR_PRIORITY = 100


def front_door_access(front_door_id: pulumi.Input[str]) -> dict[str, Any]:
    """``SiteConfigArgs`` arguments that admit only the Front Door profile ``front_door_id``.

    Use as ``web.SiteConfigArgs(..., **front_door_access(front_door.front_door_id))``
    on the site and on the slot.
    """
    return {
        "ip_security_restrictions": [
            web.IpSecurityRestrictionArgs(
                name=ALLOW_FRONT_DOOR_RULE,
                description="Only this fleet's Front Door profile",
                priority=ALLOW_FRONT_DOOR_PRIORITY,
                action="Allow",
                tag=web.IpFilterTag.SERVICE_TAG,
                ip_address=FRONT_DOOR_SERVICE_TAG,
                headers={FRONT_DOOR_ID_HEADER: [front_door_id]},
            )
        ],
        "ip_security_restrictions_default_action": web.DefaultAction.DENY,
        "scm_ip_security_restrictions_use_main": False,
    }


def forward_proxy_http_settings() -> web.HttpSettingsArgs:
    """Easy Auth's ``httpSettings`` behind Front Door: HTTPS required, URLs from the forwarded host.

    Use in place of ``auth_settings``' ``http_settings`` (components/auth.py)
    when the site is behind Front Door.
    """
    return web.HttpSettingsArgs(
        require_https=True,
        forward_proxy=web.ForwardProxyArgs(convention=web.ForwardProxyConvention.STANDARD),
    )
