"""Per-caller and per-tool rate limits for ``tools/call``, shared by every instance through Redis.

`app.ratelimit.spec` is the configuration (``MCP_RATE_LIMITS``): standard library only, so the Pulumi
stack validates its ``rateLimits`` config with the same code. `app.ratelimit.limiter` is the engine.
This package module imports neither, so importing the spec never imports a Redis client.
"""
