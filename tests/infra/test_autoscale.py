"""Autoscale: CPU rules on the plan, within Azure's documented limits, min = default = instanceCount."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import isodate
import jsonschema
import pytest

from components.autoscale import Autoscale, AutoscaleArgs

SETTING = "azure-native:monitor:AutoscaleSetting"
PLAN_ID = "/subscriptions/s/resourceGroups/rg-mcp/providers/Microsoft.Web/serverfarms/plan1"
TAGS = {"project": "mcpscale-azure", "stack": "test"}
# Microsoft.Insights 2022-10-01 autoscale schema, transcribed from the REST API specs (tests/infra/schemas/README.md).
SCHEMA = Path(__file__).with_name("schemas") / "autoscale_2022-10-01.schema.json"


def run_autoscale(infra, min_count=3, max_count=10, scale_out=70, scale_in=30, notify_emails=()):
    args = AutoscaleArgs(
        resource_group_name="rg-mcp",
        location="westeurope",
        plan_id=PLAN_ID,
        min_count=min_count,
        max_count=max_count,
        scale_out_cpu=scale_out,
        scale_in_cpu=scale_in,
        notify_emails=notify_emails,
        tags=TAGS,
    )
    return infra.run(lambda: Autoscale("autoscale", args)).one(SETTING)


def minutes(duration: str) -> float:
    parsed = isodate.parse_duration(duration)
    assert isinstance(parsed, datetime.timedelta), duration
    return parsed.total_seconds() / 60


def rules(setting) -> dict[str, dict]:
    (profile,) = setting.get("profiles")
    return {r["scaleAction"]["direction"]: r for r in profile["rules"]}


def test_setting_targets_the_plan_and_is_enabled(infra):
    setting = run_autoscale(infra)
    assert setting.get("targetResourceUri") == PLAN_ID
    assert setting.get("enabled") is True
    assert setting.get("location") == "westeurope" and setting.get("resourceGroupName") == "rg-mcp"
    assert setting.get("tags") == {**TAGS, "component": "autoscale"}


@pytest.mark.parametrize(("low", "high"), [(1, 1), (1, 10), (3, 10), (10, 10), (5, 30)])
def test_capacity_min_and_default_are_the_instance_count_max_the_limit(infra, low, high):
    (profile,) = run_autoscale(infra, min_count=low, max_count=high).get("profiles")
    assert profile["capacity"] == {"minimum": str(low), "default": str(low), "maximum": str(high)}
    capacity = {k: int(v) for k, v in profile["capacity"].items()}
    assert 1 <= capacity["minimum"] <= capacity["default"] <= capacity["maximum"]


def test_rules_scale_on_the_plan_cpu_metric(infra):
    for rule in rules(run_autoscale(infra)).values():
        trigger = rule["metricTrigger"]
        assert trigger["metricName"] == "CpuPercentage"
        assert trigger["metricNamespace"] == "microsoft.web/serverfarms"
        assert trigger["metricResourceUri"] == PLAN_ID
        assert trigger["statistic"] == "Average" and trigger["timeAggregation"] == "Average"


def test_one_scale_out_and_one_scale_in_rule_with_the_thresholds(infra):
    by_direction = rules(run_autoscale(infra, scale_out=75, scale_in=25))
    assert set(by_direction) == {"Increase", "Decrease"}
    out, in_ = by_direction["Increase"], by_direction["Decrease"]
    assert (out["metricTrigger"]["operator"], out["metricTrigger"]["threshold"]) == ("GreaterThan", 75)
    assert (in_["metricTrigger"]["operator"], in_["metricTrigger"]["threshold"]) == ("LessThan", 25)
    for rule in (out, in_):
        assert rule["scaleAction"]["type"] == "ChangeCount" and rule["scaleAction"]["value"] == "1"


def test_durations_are_within_azure_documented_limits(infra):
    for rule in rules(run_autoscale(infra)).values():
        trigger, action = rule["metricTrigger"], rule["scaleAction"]
        assert minutes(trigger["timeGrain"]) >= 1
        assert 5 <= minutes(trigger["timeWindow"]) <= 12 * 60
        assert 1 <= minutes(action["cooldown"]) <= 7 * 24 * 60
        # The window must hold at least one grain.
        assert minutes(trigger["timeWindow"]) >= minutes(trigger["timeGrain"])


def test_scale_in_is_slower_than_scale_out(infra):
    by_direction = rules(run_autoscale(infra))
    out, in_ = by_direction["Increase"], by_direction["Decrease"]
    assert minutes(in_["metricTrigger"]["timeWindow"]) >= minutes(out["metricTrigger"]["timeWindow"])
    assert minutes(in_["scaleAction"]["cooldown"]) >= minutes(out["scaleAction"]["cooldown"])


def test_setting_validates_against_the_azure_autoscale_schema(infra):
    schema = json.loads(SCHEMA.read_text())
    setting = run_autoscale(infra)
    properties = schema["definitions"]["AutoscaleSetting"]["properties"]
    body = {k: v for k, v in setting.inputs.items() if k in properties}
    assert {"profiles", "targetResourceUri", "enabled"} <= body.keys()
    jsonschema.validate(body, schema)
    resource = {"location": setting.get("location"), "tags": setting.get("tags"), "properties": body}
    jsonschema.validate(resource, schema)


def test_schema_check_would_catch_a_bad_duration(infra):
    schema = json.loads(SCHEMA.read_text())
    setting = run_autoscale(infra)
    body = {k: v for k, v in setting.inputs.items() if k in ("profiles", "targetResourceUri", "enabled")}
    body["profiles"][0]["rules"][0]["metricTrigger"]["timeWindow"] = "5 minutes"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(body, schema)


def test_scale_actions_are_mailed_to_the_alert_addresses_only(infra):
    assert run_autoscale(infra).get("notifications", None) is None
    setting = run_autoscale(infra, notify_emails=("ops@example.com", "oncall@example.org"))
    assert setting.get("notifications") == [
        {
            "operation": "Scale",
            "email": {
                "customEmails": ["ops@example.com", "oncall@example.org"],
                "sendToSubscriptionAdministrator": False,
                "sendToSubscriptionCoAdministrators": False,
            },
        }
    ]
    schema = json.loads(SCHEMA.read_text())
    jsonschema.validate({k: v for k, v in setting.inputs.items() if k in ("profiles", "notifications")}, schema)


def test_setting_is_a_child_of_the_autoscale_component(infra):
    def program():
        Autoscale(
            "autoscale",
            AutoscaleArgs("rg-mcp", "westeurope", PLAN_ID, 1, 2, 70, 30, (), TAGS),
        )

    run = infra.run(program)
    assert run.one(SETTING).parent == run.one("mcpscale:azure:Autoscale").urn


@pytest.mark.parametrize(
    ("low", "high", "out", "in_"),
    [(0, 10, 70, 30), (5, 4, 70, 30), (1, 10, 30, 30), (1, 10, 100, 30), (1, 10, 70, 0)],
)
def test_args_refuse_a_range_or_thresholds_azure_would_reject(low, high, out, in_):
    with pytest.raises(ValueError):
        AutoscaleArgs("rg", "westeurope", PLAN_ID, low, high, out, in_, (), TAGS)
