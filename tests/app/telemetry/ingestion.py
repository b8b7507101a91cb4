"""A local stand-in for Application Insights ingestion, and the environment that makes a real server export to it.

Shared by the end-to-end telemetry tests and the canary drill, which judges builds by the rows the app really sends.
"""

from __future__ import annotations

import time

from app import telemetry
from bench.ingestion import Ingestion


class FakeIngestion(Ingestion):
    """Stands in for the Application Insights ingestion (and live metrics) endpoint on 127.0.0.1, keeping rows."""

    def __init__(self) -> None:
        super().__init__(keep=True)

    def of_type(self, base_type: str) -> list[dict]:
        with self.lock:
            return [e for e in self.envelopes if e.get("data", {}).get("baseType") == base_type]

    def wait_for(self, predicate, timeout: float = 20.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if found := predicate():
                return found
            time.sleep(0.1)
        raise AssertionError(f"ingestion endpoint never received the expected telemetry; got {self.envelopes!r}")


def ingestion_env(ingestion: FakeIngestion, tmp_path) -> dict[str, str]:
    """The server's environment for exporting everything to ``ingestion``, promptly and unsampled."""
    return {
        # The exporter keeps telemetry it could not send under the temp folder, keyed by instrumentation key, and
        # retries it from any later process with the same key: a private temp folder keeps others' rows out.
        "TMPDIR": str(tmp_path),
        telemetry.CONNECTION_STRING_ENV: "InstrumentationKey=00000000-0000-0000-0000-000000000000;"
        f"IngestionEndpoint={ingestion.url};LiveEndpoint={ingestion.url}",
        "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",  # statsbeat would go to Microsoft's endpoint
        "OTEL_TRACES_SAMPLER": "always_on",  # the distro's default rate limit could drop a span
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_BLRP_SCHEDULE_DELAY": "100",
        "OTEL_METRIC_EXPORT_INTERVAL": "500",
    }


def mcp_request_rows(ingestion: FakeIngestion) -> list[dict]:
    """The ``requests`` rows of MCP messages received so far (FastAPI's own routes carry no mcp.method.name)."""
    return [r for r in ingestion.of_type("RequestData") if "mcp.method.name" in r["data"]["baseData"]["properties"]]
