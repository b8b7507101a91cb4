"""Names and values the app (app/) and the stack that deploys it (components/) must agree on; stdlib only."""

GRACEFUL_TIMEOUT_SECONDS = 20
"""Seconds in-flight requests get after SIGTERM (``--graceful-timeout``'s default); the stack gives the platform's
stop a margin above it (components/site_config.py, ``WEBSITES_CONTAINER_STOP_TIME_LIMIT``)."""
