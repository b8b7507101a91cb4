"""FastAPI's side of the app: /health and the / status page, and the router's split."""

from __future__ import annotations


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
