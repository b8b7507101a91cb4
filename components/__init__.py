"""Pulumi components for a stateless MCP server on Azure App Service.

One concern per module: ``settings`` (validated stack config),
``resource_group``, ``plan``, ``secrets`` (Key Vault with the key rings),
``site`` and ``staging_slot`` (both built from ``site_config``, with optional
Easy Auth from ``auth`` and their identities' roles from ``roles``),
``monitoring`` (with the workbook content from ``workbook``), ``operations``
(platform logs and alerts), ``autoscale``, and code delivery in ``package``
(with the team's server from ``server_source`` and its merged
``requirements``) and ``delivery``. ``__main__.py`` wires them together.
"""
