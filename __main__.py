"""A stateless MCP server on Azure App Service, scaled out behind the platform load balancer.

config ─► resource group ─┬─► plan ─► autoscale (CPU, on the plan; scale mails)
                          ├─► secrets (Key Vault: handle and request-state key rings)
                          ├─► monitoring (Log Analytics, App Insights without local auth, workbook)
                          └─► site ─► staging slot      (identities: read the secrets, publish telemetry)
                                └─► operations (logs to the workspace, alerts) ─► delivery (zip deploy, swap)
"""

import pulumi

from components.autoscale import Autoscale, AutoscaleArgs
from components.delivery import Delivery, DeliveryArgs
from components.monitoring import Monitoring, MonitoringArgs
from components.operations import Operations, OperationsArgs
from components.package import build_package
from components.plan import PLAN_ID_OUTPUT, Plan, PlanArgs, previous_plan_id
from components.resource_group import resource_group
from components.secrets import Secrets, SecretsArgs
from components.settings import StackSettings, workbook_name
from components.site import Site, SiteArgs
from components.site_config import AppConfig
from components.staging_slot import StagingSlot, StagingSlotArgs

settings = StackSettings.load()  # fails here, before any resource, on a bad config value
group = resource_group(settings)
where = {"resource_group_name": group, "location": settings.location}

plan = Plan(
    "plan",
    PlanArgs(
        **where,
        sku=settings.sku,
        instance_count=settings.instance_count,
        autoscale=settings.autoscale,
        zone_redundant=settings.zone_redundant,
        previous_plan_id=previous_plan_id() if settings.autoscale else None,
        tags=settings.tags,
    ),
)

autoscale = None
if settings.autoscale:
    autoscale = Autoscale(
        "autoscale",
        AutoscaleArgs(
            **where,
            plan_id=plan.id,
            min_count=settings.instance_count,
            max_count=settings.autoscale_max_count,
            scale_out_cpu=settings.cpu_scale_out_threshold,
            scale_in_cpu=settings.cpu_scale_in_threshold,
            notify_emails=settings.alert_emails,
            tags=settings.tags,
        ),
    )

secrets = Secrets(
    "secrets",
    SecretsArgs(
        **where,
        handle_keys=settings.handle_keys,
        request_state_keys=settings.request_state_keys,
        purge_protection=settings.key_vault_purge_protection,
        tags=settings.tags,
    ),
)

monitoring = Monitoring(
    "monitoring",
    MonitoringArgs(
        **where,
        plan_id=plan.id,
        autoscale_setting_id=autoscale.id if autoscale else None,
        workbook_name=workbook_name(settings.project, settings.stack),
        workbook_display_name=f"MCP fleet ({settings.project}/{settings.stack})",
        tags=settings.tags,
    ),
)

site = Site(
    "mcp",
    SiteArgs(
        **where,
        plan_id=plan.id,
        app=AppConfig(
            python_version=settings.python_version,
            workers=settings.workers_per_instance,
            key_vault_settings=secrets.app_settings,
            app_insights_connection_string=monitoring.connection_string,
            allowed_origins=settings.allowed_origins,
            auth_scopes=settings.easy_auth.scopes if settings.easy_auth else (),
            tool_roles=settings.tool_roles,
        ),
        easy_auth=settings.easy_auth,
        grants=[secrets.reader, monitoring.publisher],
        tags=settings.tags,
    ),
)

slot = StagingSlot("staging", StagingSlotArgs(site=site, tags=settings.tags)) if settings.staging_slot else None

operations = Operations(
    "operations",
    OperationsArgs(
        resource_group_name=group,
        workspace_id=monitoring.workspace_id,
        site_id=site.id,
        slot_id=slot.id if slot else None,
        plan_id=plan.id,
        easy_auth=settings.easy_auth is not None,
        cpu_scale_out_threshold=settings.cpu_scale_out_threshold,
        alert_emails=settings.alert_emails,
        tags=settings.tags,
    ),
)

delivery = Delivery(
    "delivery",
    DeliveryArgs(
        site_id=site.id,
        package=build_package(source=settings.server.folder, server=settings.server.spec),
        staging_slot=slot.slot_name if slot else None,
        swap=settings.swap,
        # Logs flow before the first deploy, so its Oryx build shows in the console logs.
        depends_on=[site, *([slot] if slot else []), *operations.log_settings],
    ),
)

pulumi.export("resourceGroup", group)
pulumi.export(PLAN_ID_OUTPUT, plan.id)
pulumi.export("siteName", site.name)
pulumi.export("siteUrl", site.url)
pulumi.export("mcpUrl", pulumi.Output.concat(site.url, "/mcp"))
pulumi.export("stagingMcpUrl", pulumi.Output.concat(slot.url, "/mcp") if slot else None)
pulumi.export("packageSha256", delivery.package_sha256)
pulumi.export("appInsightsName", monitoring.app_insights_name)
pulumi.export("workbookId", monitoring.workbook_id)
pulumi.export(
    "autoscaleRange",
    f"{settings.instance_count}..{settings.autoscale_max_count}" if settings.autoscale else "off",
)
