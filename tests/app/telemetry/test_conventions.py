"""The names telemetry emits are the ones the workbook queries."""

from __future__ import annotations

from app import telemetry
from components import workbook


def test_contract_with_the_workbook_is_the_same_on_both_sides():
    for name in (
        "ATTR_METHOD",
        "ATTR_TOOL",
        "ATTR_PROTOCOL_VERSION",
        "ATTR_REQUEST_ID",
        "ATTR_ERROR_TYPE",
        "DIM_ERROR_TYPE",
        "DIM_ERROR_CODE",
        "SERVICE_NAME_PREFIX",
        "METRIC_OPERATION_DURATION",
        "AUDIT_EVENT",
        "DIM_OUTCOME",
        "OUTCOME_OK",
        "MEASURE_DURATION_MS",
    ):
        assert getattr(telemetry, name) == getattr(workbook, name), name
