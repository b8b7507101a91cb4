"""Optional App Service Authentication (Easy Auth) with Microsoft Entra ID.

The platform rejects unauthenticated MCP requests with 401 before they reach
the app, except ``/health`` (health checks and swap warm-up must get
through). With the app setting ``WEBSITE_AUTH_PRM_DEFAULT_WITH_SCOPES`` (set
in components/site_config.py) App Service also serves the MCP
protected-resource metadata clients need to find the authorization server.
With ``authAllowedClientApps`` set, only tokens those client applications
requested are accepted (the token's ``appid``/``azp`` claim); otherwise any
client application in the tenant that can get a token for the API can call.
Like the site config, one function builds the settings for site and slot.
"""

from __future__ import annotations

from typing import Any

from pulumi_azure_native import web

from components.front_door_lock import forward_proxy_http_settings
from components.settings import EasyAuth
from components.site_config import HEALTH_CHECK_PATH


def auth_settings(auth: EasyAuth, behind_front_door: bool = False) -> dict[str, Any]:
    """Arguments of WebAppAuthSettingsV2 / WebAppAuthSettingsV2Slot; behind Front Door, URLs name Front Door's host."""
    return {
        "platform": web.AuthPlatformArgs(enabled=True, runtime_version="~1"),
        "global_validation": web.GlobalValidationArgs(
            require_authentication=True,
            unauthenticated_client_action=web.UnauthenticatedClientActionV2.RETURN401,
            excluded_paths=[HEALTH_CHECK_PATH],
        ),
        "http_settings": (
            forward_proxy_http_settings() if behind_front_door else web.HttpSettingsArgs(require_https=True)
        ),
        "identity_providers": web.IdentityProvidersArgs(
            azure_active_directory=web.AzureActiveDirectoryArgs(
                enabled=True,
                registration=web.AzureActiveDirectoryRegistrationArgs(
                    client_id=auth.client_id,
                    open_id_issuer=auth.issuer,
                ),
                validation=web.AzureActiveDirectoryValidationArgs(
                    allowed_audiences=[auth.client_id, f"api://{auth.client_id}"],
                    default_authorization_policy=web.DefaultAuthorizationPolicyArgs(
                        allowed_applications=list(auth.allowed_applications)
                    )
                    if auth.allowed_applications
                    else None,
                ),
            ),
        ),
        # Bearer tokens only: a stateless server keeps no token store.
        "login": web.LoginArgs(token_store=web.TokenStoreArgs(enabled=False)),
    }
