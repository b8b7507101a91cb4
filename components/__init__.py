"""Pulumi components for a stateless MCP server on Azure App Service.

One concern per module: ``settings`` (validated stack config),
``resource_group``, ``plan``, ``site`` and ``staging_slot`` (both built from
``site_config``, with optional Easy Auth from ``auth``), ``monitoring`` (with
the workbook content from ``workbook``), ``autoscale``, and code delivery in
``package`` (with the team's server from ``server_source`` and its merged
``requirements``) and ``delivery``. ``__main__.py`` wires them together.
"""
