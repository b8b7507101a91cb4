"""A stateless MCP server on Azure App Service, scaled out behind the platform load balancer.

config ─► resource group ─┬─► key rings (generated once) ─► every region's Key Vault
                          ├─► monitoring (Log Analytics, App Insights without local auth, workbook)
                          ├─► a stamp per region: plan ─► autoscale, secrets, site ─► staging slot, operations
                          ├─► Front Door (optional; the sites admit only it) ─► mcpUrl
                          └─► delivery (zip deploy per region; swaps one region after the other)

The wiring is components/fleet.py's McpFleet, which another Pulumi program can use the same way.
"""

import pulumi

from components.fleet import McpFleet, McpFleetArgs
from components.plan import PLAN_ID_OUTPUT

args = McpFleetArgs.from_config()  # fails here, before any resource, on a bad config value
fleet = McpFleet("mcp-fleet", args)

pulumi.export("resourceGroup", fleet.resource_group_name)
pulumi.export(PLAN_ID_OUTPUT, fleet.plan_id)
pulumi.export("siteName", fleet.site_name)
pulumi.export("siteUrl", fleet.site_url)
pulumi.export("mcpUrl", fleet.mcp_url)
pulumi.export("stagingMcpUrl", fleet.staging_mcp_url)
pulumi.export("regionUrls", fleet.region_urls)
pulumi.export("packageSha256", fleet.package_sha256)
pulumi.export("appInsightsName", fleet.app_insights_name)
pulumi.export("workbookId", fleet.workbook_id)
pulumi.export("autoscaleRange", fleet.autoscale_range)
