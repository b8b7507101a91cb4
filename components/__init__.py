"""Pulumi components for a stateless MCP server on Azure App Service.

The public API, for this project's ``__main__.py`` and for any other Pulumi
program (docs/internals.md: "Use the components from your own Pulumi program"):

- ``components.fleet``: :class:`McpFleet`, the whole fleet as one component,
  and :class:`McpFleetArgs`, what a platform team chooses (a field per config
  key, the same defaults and checks; ``McpFleetArgs.from_config()`` reads and
  validates a stack's config);
- ``components.settings``: ``SKUS``, :class:`EasyAuth` and
  :class:`ConfigError`, and the declarations of the config keys;
- ``components.server_source``: ``resolve_server_source(server, folder)``,
  the team's ``MCPServer`` and its folder, checked;
- ``components.plan``: ``PLAN_ID_OUTPUT``, the stack output to export
  ``McpFleet.plan_id`` under when autoscale is on.

From another program (a checkout of this project on its import path)::

    import pulumi
    from components.fleet import McpFleet, McpFleetArgs
    from components.plan import PLAN_ID_OUTPUT
    from components.server_source import resolve_server_source
    from components.settings import SKUS

    server = resolve_server_source("acme_tools.server:mcp", "/home/me/acme-tools")
    fleet = McpFleet("acme", McpFleetArgs(location="westeurope", server=server, sku=SKUS["P1v3"]))
    pulumi.export(PLAN_ID_OUTPUT, fleet.plan_id)
    pulumi.export("mcpUrl", fleet.mcp_url)

Behind it, one concern per module: ``stamp`` (one region's stamp, built per
entry of ``regions``, checked against ``regions``' table), ``front_door``
(with the origin lock in ``front_door_lock``), ``resource_group``, ``plan``, ``secrets``
(Key Vault with the key rings), ``site`` and ``staging_slot`` (both built
from ``site_config``, with optional Easy Auth from ``auth`` and their
identities' roles from ``roles``), ``monitoring`` (with the workbook content
from ``workbook``), ``operations`` (platform logs and alerts), ``autoscale``,
``network`` (private networking), ``rate_limit_store`` (the rate limits'
Azure Managed Redis, with ``rateLimits``), and code delivery in ``package`` (with the team's server from
``server_source`` and its merged ``requirements``) and ``delivery``.
"""
