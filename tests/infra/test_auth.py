"""Easy Auth: Entra ID in front of /mcp, 401 for anonymous calls, /health left open."""

from __future__ import annotations

from pulumi_azure_native import web

from components.auth import auth_settings
from components.settings import EasyAuth

CLIENT = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
TENANT = "11111111-2222-3333-4444-555555555555"


def test_auth_settings_on_the_wire(infra):
    auth = EasyAuth(CLIENT, TENANT, (f"api://{CLIENT}/user_impersonation",))
    run = infra.run(
        lambda: web.WebAppAuthSettingsV2("auth", name="site", resource_group_name="rg", **auth_settings(auth))
    )
    assert run.one("azure-native:web:WebAppAuthSettingsV2").inputs == {
        "name": "site",
        "resourceGroupName": "rg",
        "platform": {"enabled": True, "runtimeVersion": "~1"},
        "globalValidation": {
            "requireAuthentication": True,
            "unauthenticatedClientAction": "Return401",
            "excludedPaths": ["/health"],
        },
        "httpSettings": {"requireHttps": True},
        "identityProviders": {
            "azureActiveDirectory": {
                "enabled": True,
                "registration": {
                    "clientId": CLIENT,
                    "openIdIssuer": f"https://login.microsoftonline.com/{TENANT}/v2.0",
                },
                "validation": {"allowedAudiences": [CLIENT, f"api://{CLIENT}"]},
            }
        },
        "login": {"tokenStore": {"enabled": False}},
    }


def test_allowed_client_applications_become_the_default_authorization_policy(infra):
    apps = ("aaaaaaaa-0000-0000-0000-000000000001", "aaaaaaaa-0000-0000-0000-000000000002")
    auth = EasyAuth(CLIENT, TENANT, ("api://x/y",), allowed_applications=apps)
    run = infra.run(
        lambda: web.WebAppAuthSettingsV2("auth", name="site", resource_group_name="rg", **auth_settings(auth))
    )
    validation = run.one("azure-native:web:WebAppAuthSettingsV2").get(
        "identityProviders.azureActiveDirectory.validation"
    )
    assert validation == {
        "allowedAudiences": [CLIENT, f"api://{CLIENT}"],
        "defaultAuthorizationPolicy": {"allowedApplications": list(apps)},
    }
