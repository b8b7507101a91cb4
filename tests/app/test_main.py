"""FastAPI's side of the app: /health and the / status page, and the router's split."""

from __future__ import annotations

import asyncio
import gc

from app.main import create_app


def test_health_is_ok(http):
    response = http.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_status_page_names_the_serving_instance(http, server):
    status = http.get("/").json()
    assert status["instance"] == "instance-under-test"
    assert status["pid"] == server.process.pid
    assert status["slot"] == "local"
    assert status["mcp_endpoint"] == "/mcp"


def test_paths_other_than_mcp_are_fastapis(http):
    assert http.post("/mcp/extra", json={}).status_code == 404
    assert http.get("/docs").status_code == 404  # no interactive docs on the deployed service


def test_startup_freezes_the_loaded_heap_out_of_collections_until_shutdown():
    """A full collection must not walk the loaded server and SDK, or every request behind it waits (tens of ms)."""
    app = create_app(environ={})
    frozen_while_serving = []

    async def serve_once() -> None:
        async with app.api.router.lifespan_context(app.api):
            frozen_while_serving.append(gc.get_freeze_count())

    assert gc.get_freeze_count() == 0
    asyncio.run(serve_once())
    assert frozen_while_serving[0] > 0
    assert gc.get_freeze_count() == 0
