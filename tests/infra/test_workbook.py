"""The fleet workbook: valid Notebook/1.0, every Logs query valid KQL against the
Application Insights tables, and the panels the operators need."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any, Iterator

import jsonschema
import pytest

from components import workbook
from components.workbook import build_workbook
from tests.infra.kusto.checker import kql_diagnostics

SCHEMA_PATH = Path(__file__).resolve().parents[3] / "shared" / "azure-schemas" / "workbook.schema.json"
PLAN_ID = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-mcp"
    "/providers/Microsoft.Web/serverfarms/plan-mcp"
)

# What a workbook substitutes for the time range parameter before it runs a
# query: a relative range from the picker, or a custom absolute range.
TIME_RANGE_FORMS = {
    "relative": "> ago(4h)",
    "absolute": "between (datetime(2026-07-28T00:00:00Z) .. datetime(2026-07-28T04:00:00Z))",
}
GRAIN = "5m"
PARAMETER_REFERENCE = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*(?::[A-Za-z0-9_]+)?\}")


def substitute_parameters(query: str, time_range: str) -> str:
    """The query as the workbook runs it; fails on any parameter the workbook does not define."""
    text = query.replace("{TimeRange:grain}", GRAIN).replace("{TimeRange}", time_range)
    leftover = PARAMETER_REFERENCE.findall(text)
    assert not leftover, f"query references undefined workbook parameters {leftover}:\n{query}"
    return text


def walk(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for item in items:
        yield item
        if item["type"] == 12:
            yield from walk(item["content"]["items"])


def logs_items(content: dict[str, Any]) -> list[dict[str, Any]]:
    return [item for item in walk(content["items"]) if item["type"] == 3 and item["content"]["queryType"] == 0]


def metrics_items(content: dict[str, Any]) -> list[dict[str, Any]]:
    return [item for item in walk(content["items"]) if item["type"] == 10]


def errors(diagnostics: list[dict]) -> list[dict]:
    return [d for d in diagnostics if d["severity"] == "Error"]


@pytest.fixture(scope="module")
def content() -> dict[str, Any]:
    # What Azure receives: the JSON text the monitoring component puts in serializedData.
    return json.loads(json.dumps(build_workbook(PLAN_ID)))


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json.loads(SCHEMA_PATH.read_text()))


@pytest.fixture(scope="module")
def kusto_results(content) -> dict[str, list[dict]]:
    """Diagnostics for every Logs query under every time range form, from one checker run."""
    queries = {
        f"{form}:{item['name']}": substitute_parameters(item["content"]["query"], time_range)
        for form, time_range in TIME_RANGE_FORMS.items()
        for item in logs_items(content)
    }
    return kql_diagnostics(queries)


# --- Notebook/1.0 schema -----------------------------------------------------


def test_serialized_workbook_validates_against_the_notebook_schema(content, validator):
    validator.validate(content)
    assert content["version"] == "Notebook/1.0"


def test_schema_check_rejects_a_malformed_item(content, validator):
    broken = copy.deepcopy(content)
    broken["items"].append({"type": 3})  # a query item without content
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(broken)


def test_item_names_are_unique(content):
    names = [item["name"] for item in walk(content["items"])]
    assert len(names) == len(set(names)), names


def test_plan_id_must_be_a_resource_id():
    with pytest.raises(ValueError, match="plan_id must be an Azure resource id"):
        build_workbook("plan-mcp")


# --- KQL -----------------------------------------------------------------------


def test_every_logs_query_parses_and_type_checks(content, kusto_results):
    assert len(kusto_results) == len(TIME_RANGE_FORMS) * len(logs_items(content)) > 0
    failures = {name: errors(diagnostics) for name, diagnostics in kusto_results.items() if errors(diagnostics)}
    assert not failures, json.dumps(failures, indent=2)


def test_checker_rejects_a_misspelled_column_and_a_syntax_error(content):
    query = substitute_parameters(logs_items(content)[0]["content"]["query"], TIME_RANGE_FORMS["relative"])
    assert "cloud_RoleInstance" in query
    results = kql_diagnostics(
        {
            "misspelled": query.replace("cloud_RoleInstance", "cloud_RoleInstanse"),
            "unbalanced": query.replace("sum(itemCount)", "sum(itemCount", 1),
            "unknown_table": query.replace("requests", "request", 1),
        }
    )
    misspelled = errors(results["misspelled"])
    assert misspelled and "cloud_RoleInstanse" in misspelled[0]["message"]
    assert errors(results["unbalanced"])
    assert errors(results["unknown_table"])


def test_undefined_workbook_parameters_are_caught():
    with pytest.raises(AssertionError, match="undefined workbook parameters"):
        substitute_parameters("requests | where timestamp {TimeRang}", "> ago(1h)")


# --- time range ---------------------------------------------------------------


def test_time_range_parameter_drives_every_query_and_chart(content):
    parameters = [p for item in walk(content["items"]) if item["type"] == 9 for p in item["content"]["parameters"]]
    time_range = [p for p in parameters if p["name"] == workbook.TIME_RANGE_PARAMETER]
    assert len(time_range) == 1 and time_range[0]["type"] == 4 and time_range[0]["isRequired"]
    for item in logs_items(content):
        assert "{TimeRange}" in item["content"]["query"], item["name"]
        assert item["content"]["timeContextFromParameter"] == "TimeRange", item["name"]
    for item in metrics_items(content):
        assert item["content"]["timeContextFromParameter"] == "TimeRange", item["name"]


# --- panels -------------------------------------------------------------------


def item(content: dict[str, Any], name: str) -> dict[str, Any]:
    found = [i for i in walk(content["items"]) if i["name"] == name]
    assert found, f"no workbook item named {name!r}"
    return found[0]


def test_load_distribution_by_instance_as_table_and_timechart(content):
    table = item(content, "requests-per-instance")["content"]
    chart = item(content, "requests-per-instance-over-time")["content"]
    assert table["visualization"] == "table" and chart["visualization"] == "timechart"
    for panel in (table, chart):
        assert re.search(r"summarize .*by .*cloud_RoleInstance", panel["query"], re.S)
        assert 'isnotempty(customDimensions["mcp.method.name"])' in panel["query"]
