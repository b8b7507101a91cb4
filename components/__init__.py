"""Pulumi components for a stateless MCP server on Azure App Service.

One concern per module: ``settings`` (validated stack config), ``plan``,
``site``, ``staging_slot`` (with ``site_config``, the config both share),
``monitoring``, ``autoscale``, ``auth`` (optional Easy Auth), and the
resource group in ``resource_group``.
"""
