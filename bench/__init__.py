"""Transport benchmark: our MCP server vs. the official SDK's transport vs. a bare ASGI ceiling."""
