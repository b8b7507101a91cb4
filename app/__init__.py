"""The bundled stateless MCP server (MCP 2026-07-28 plus legacy 2025-xx clients)."""
