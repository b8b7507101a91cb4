"""The canary release: its config, the command Delivery registers, and its script run against a stand-in `az`.

The script runs for real, as in tests/infra/test_delivery.py, with a fake
`az` that records its arguments and a stand-in gate (the real interpreter
for everything but ``-m components.canary_gate``, which exits with the
verdict the test chooses): the sequence of az calls is the specification of
each path. The gate's own decisions are tests/infra/test_canary_gate.py's.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
import yaml
from pulumi_azure_native import web

from components.canary import (
    GATE_NOT_ENOUGH_DATA,
    GATE_PROMOTE,
    GATE_ROLL_BACK,
    WEB_API_VERSION,
    CanaryPolicy,
    routing_rules,
)
from components.delivery import CANARY_SCRIPT, NO_OP_UPDATE, Delivery, DeliveryArgs
from components.fleet import McpFleetArgs
from components.package import PROJECT_ROOT, build_package
from components.settings import ConfigError
from tests.infra.conftest import PROJECT_FILE, SUBSCRIPTION
from tests.infra.test_delivery import COMMAND, SITE_ID, _commands, _step, _steps

APP_INSIGHTS_ID = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg/providers/Microsoft.Insights/components/mcp-ai"
SLOT_HOST = "mcp-site0001-staging-b7e2c1.westeurope-01.azurewebsites.net"
SCHEMA = json.loads((Path(__file__).with_name("schemas") / "siteconfig-experiments_2025-05-01.schema.json").read_text())
CONFIG_URL = (
    f"https://management.azure.com/subscriptions/{SUBSCRIPTION}/resourceGroups/rg/providers/Microsoft.Web/sites/"
    f"mcp-site0001/config/web?api-version={WEB_API_VERSION}"
)
POLICY = CanaryPolicy(percent=10, minutes=15, max_error_rate_points=0.5, max_p95_ratio=1.25, min_requests=300)


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    """Two packages of different content: the real app, then with one line changed."""
    built = []
    for version in ("v1", "v2"):
        root = tmp_path_factory.mktemp(version)
        shutil.copytree(PROJECT_ROOT / "app", root / "app", ignore=shutil.ignore_patterns("__pycache__"))
        main = root / "app" / "main.py"
        main.write_text(main.read_text() + f"\n# {version}\n")
        built.append(build_package(root))
    return built


def _program(package, canary: CanaryPolicy | None, staging_slot: str | None = "staging", swap: str | None = None):
    def program() -> None:
        site = web.WebApp("site", resource_group_name="rg", server_farm_id="plan-id", name="mcp-site0001")
        setup = []
        if staging_slot is not None:
            setup.append(web.WebAppSlot("slot", resource_group_name="rg", name=site.name, slot=staging_slot))
        Delivery(
            "delivery",
            DeliveryArgs(
                site_id=site.id,
                package=package,
                staging_slot=staging_slot,
                swap=swap,
                production_url="https://mcp-site0001.azurewebsites.net" if swap else None,
                depends_on=setup,
                canary=canary,
                app_insights_id=APP_INSIGHTS_ID if canary else None,
            ),
        )

    return program


# ---------------------------------------------------------------------------
# Config: the canary* keys


def _load(infra, config: dict) -> McpFleetArgs:
    loaded = []
    infra.run(lambda: loaded.append(McpFleetArgs.from_config()), {"azure-native:location": "westeurope", **config})
    return loaded[0]


def _problems(infra, config: dict) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        _load(infra, config)
    return raised.value.problems


def test_the_canary_is_off_by_default_and_on_with_a_percent(infra):
    assert _load(infra, {}).canary is None
    assert _load(infra, {"canaryPercent": 0, "canaryMinutes": 30}).canary is None
    assert _load(infra, {"canaryPercent": 10}).canary == CanaryPolicy(10, 10, 1.0, 1.5, 200)
    assert _load(
        infra,
        {
            "canaryPercent": 50,
            "canaryMinutes": 5,
            "canaryMaxErrorRatePoints": "0.25",
            "canaryMaxP95Ratio": "2",
            "canaryMinRequests": 1000,
        },
    ).canary == CanaryPolicy(50, 5, 0.25, 2.0, 1000)


def test_pulumi_yaml_declares_the_canary_keys_in_types_the_cli_accepts_with_the_codes_defaults(infra):
    schema = yaml.safe_load(PROJECT_FILE.read_text())["config"]
    canary = {key: spec for key, spec in schema.items() if key.startswith("canary")}
    assert set(canary) == {
        "canaryPercent",
        "canaryMinutes",
        "canaryMaxErrorRatePoints",
        "canaryMaxP95Ratio",
        "canaryMinRequests",
    }
    # The project file's simpleConfigType (pulumi/pulumi sdk/go/common/workspace/project.json): no decimal type.
    assert {spec["type"] for spec in canary.values()} <= {"string", "integer", "boolean", "array"}
    defaults = {key: spec["default"] for key, spec in canary.items()}
    assert _load(infra, {**defaults, "canaryPercent": 10}).canary == _load(infra, {"canaryPercent": 10}).canary


@pytest.mark.parametrize(
    ("config", "key", "allowed"),
    [
        ({"canaryPercent": 51}, "canaryPercent", "from 0 to 50"),
        ({"canaryPercent": -5}, "canaryPercent", "from 0 to 50"),
        ({"canaryPercent": "ten"}, "canaryPercent", "from 0 to 50"),
        ({"canaryPercent": 10, "canaryMinutes": 4}, "canaryMinutes", "from 5 to"),
        ({"canaryPercent": 10, "canaryMaxErrorRatePoints": "-1"}, "canaryMaxErrorRatePoints", "from 0 to below 100"),
        ({"canaryPercent": 10, "canaryMaxErrorRatePoints": "lots"}, "canaryMaxErrorRatePoints", "a number"),
        ({"canaryPercent": 10, "canaryMaxP95Ratio": "0.9"}, "canaryMaxP95Ratio", "at least 1"),
        ({"canaryPercent": 10, "canaryMaxP95Ratio": "nan"}, "canaryMaxP95Ratio", "a number"),
        ({"canaryPercent": 10, "canaryMinRequests": 0}, "canaryMinRequests", "from 1 to"),
        ({"canaryPercent": 10, "stagingSlot": False}, "canaryPercent", "runs on the staging slot"),
        ({"canaryPercent": 10, "frontDoor": True}, "canaryPercent", "released in one region"),
    ],
)
def test_a_bad_canary_value_or_combination_is_named(infra, config, key, allowed):
    (problem,) = [p for p in _problems(infra, config) if key in p]
    assert f"mcpscale-azure:{key} = " in problem and allowed in problem


def test_a_canary_without_the_slot_fails_before_any_resource(infra):
    config = {**infra.stack_config("prod"), "stagingSlot": False, "canaryPercent": 10}
    with pytest.raises(ConfigError, match="canaryPercent"):
        infra.run_main(config)
    assert infra.last.resources == []


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"percent": 0}, "canaryPercent"),
        ({"percent": 10, "minutes": 2}, "canaryMinutes"),
        ({"percent": 10, "max_p95_ratio": 0.5}, "canaryMaxP95Ratio"),
        ({"percent": 10, "min_requests": 0}, "canaryMinRequests"),
    ],
)
def test_a_policy_set_in_code_is_checked_as_config_is(fields, named):
    with pytest.raises(ValueError, match=named):
        CanaryPolicy(**fields)


def test_a_fleet_set_in_code_refuses_a_canary_without_the_slot():
    with pytest.raises(ValueError, match="a canary runs on the staging slot"):
        McpFleetArgs(location="westeurope", staging_slot=False, canary=POLICY, project="p", stack="s")
    assert McpFleetArgs(location="westeurope", canary=POLICY, project="p", stack="s").canary == POLICY


def test_delivery_refuses_a_canary_without_the_slot_or_telemetry(packages):
    with pytest.raises(ValueError, match="canary needs the staging slot and app_insights_id"):
        DeliveryArgs(site_id=SITE_ID, package=packages[0], staging_slot=None, canary=POLICY, app_insights_id="x")
    with pytest.raises(ValueError, match="canary needs the staging slot and app_insights_id"):
        DeliveryArgs(site_id=SITE_ID, package=packages[0], staging_slot="staging", canary=POLICY)


# ---------------------------------------------------------------------------
# Under mocks: the release command


def test_without_a_canary_there_is_no_release_command(infra, packages):
    assert set(_commands(infra.run(_program(packages[0], None)))) == {"staging-deploy", "production-deploy"}


def test_with_a_canary_each_package_gets_one_release_after_both_deploys(infra, packages):
    package = packages[0]
    commands = _commands(infra.run(_program(package, POLICY)))
    assert set(commands) == {"staging-deploy", "production-deploy", "canary"}
    canary = commands["canary"]
    assert canary.get("create") == CANARY_SCRIPT
    assert canary.get("update") == NO_OP_UPDATE
    assert set(canary.replace_on_changes) == {"triggers[*]"}
    assert canary.get("triggers") == [SITE_ID, package.sha256]
    assert canary.get("environment") == {
        "SITE_ID": SITE_ID,
        "SLOT": "staging",
        "APP_INSIGHTS_ID": APP_INSIGHTS_ID,
        "PACKAGE_SHA256": package.sha256,
        "CANARY_PERCENT": "10",
        "CANARY_MINUTES": "15",
        "CANARY_MAX_ERROR_RATE_POINTS": "0.5",
        "CANARY_MAX_P95_RATIO": "1.25",
        "CANARY_MIN_REQUESTS": "300",
        "GATE_PYTHON": sys.executable,
    }
    assert {commands["staging-deploy"].urn, commands["production-deploy"].urn} <= canary.dependencies


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("unchanged", {"canary": "same", "production-deploy": "same", "staging-deploy": "same"}),
        ("new package", {"canary": "replace", "production-deploy": "same", "staging-deploy": "replace"}),
        ("canary on", {"canary": "create", "production-deploy": "same", "staging-deploy": "same"}),
        ("canary off", {"canary": "delete", "production-deploy": "same", "staging-deploy": "same"}),
        ("policy changed", {"canary": "update", "production-deploy": "same", "staging-deploy": "same"}),
    ],
)
def test_only_a_new_package_runs_a_release(infra, packages, case, expected):
    first, second = packages
    stricter = CanaryPolicy(percent=20, minutes=30)
    before, after = {
        "unchanged": ((first, POLICY), (first, POLICY)),
        "new package": ((first, POLICY), (second, POLICY)),
        "canary on": ((first, None), (first, POLICY)),
        "canary off": ((first, POLICY), (first, None)),
        "policy changed": ((first, POLICY), (first, stricter)),
    }[case]
    assert _steps(infra, _program(*before), _program(*after)) == expected


def test_a_swap_of_the_same_pulumi_up_waits_for_the_release_which_waits_for_the_swaps_baseline(infra, packages):
    commands = _commands(infra.run(_program(packages[0], POLICY, swap="7")))
    assert commands["canary"].urn in commands["swap"].dependencies
    # Production's build is recorded before a canary may promote, so the swap then sees it already happened.
    assert commands["swap-baseline"].urn in commands["canary"].dependencies


def test_a_changed_policy_only_updates_and_the_update_runs_nothing(infra, packages, workdir):
    old = _commands(infra.run(_program(packages[0], POLICY)))["canary"]
    new = _commands(infra.run(_program(packages[0], CanaryPolicy(percent=20))))["canary"]
    assert _step(old, new) == "update"
    result = subprocess.run([*new.get("interpreter"), new.get("update")], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and "nothing deployed or swapped" in result.stdout


def test_the_stack_passes_its_app_insights_component_to_the_release(infra):
    config = {**infra.stack_config("prod"), "canaryPercent": 5}
    run = infra.run_main(config)
    canary = _commands(run)["canary"]
    insights = run.one("azure-native:applicationinsights:Component")
    assert canary.get("environment")["APP_INSIGHTS_ID"] == insights.outputs["id"]
    assert canary.get("environment")["CANARY_PERCENT"] == "5"
    assert canary.get("environment")["SITE_ID"] == run.one("azure-native:web:WebApp").outputs["id"]
    assert infra.run_main(infra.stack_config("prod")).of_type(COMMAND) and "canary" not in _commands(infra.last)


# ---------------------------------------------------------------------------
# The routing payload against the REST spec


def _validate(body) -> None:
    jsonschema.Draft7Validator({**SCHEMA, "$ref": "#/definitions/SiteConfigResource"}).validate(body)


def test_the_routing_rule_matches_the_rest_spec():
    body = routing_rules("staging", SLOT_HOST, 10)
    _validate(body)
    assert body == {
        "properties": {
            "experiments": {"rampUpRules": [{"actionHostName": SLOT_HOST, "reroutePercentage": 10, "name": "staging"}]}
        }
    }
    cleared = routing_rules("staging", SLOT_HOST, 0)
    _validate(cleared)
    assert cleared == {"properties": {"experiments": {"rampUpRules": []}}}


@pytest.mark.parametrize(
    "broken",
    [
        {"properties": {"experiments": {"rampUpRules": [{"actionHostName": SLOT_HOST, "reroutePercent": 10}]}}},
        {"properties": {"experiments": {"rampUpRules": [{"actionHostName": SLOT_HOST, "reroutePercentage": "10"}]}}},
        {"properties": {"experiments": {"rules": []}}},
        {"experiments": {"rampUpRules": []}},
    ],
)
def test_the_schema_rejects_a_wrong_routing_payload(broken):
    with pytest.raises(jsonschema.ValidationError):
        _validate(broken)


# ---------------------------------------------------------------------------
# The script, with a stand-in az and gate

FAKE_AZ = f"""#!/bin/bash
if [[ "$1" == version ]]; then echo "2.67.0"; exit 0; fi
printf '%s\\n' "$@" >> "$AZ_LOG"
echo '--' >> "$AZ_LOG"
if [[ "$1 $2" == "webapp show" ]]; then echo "{SLOT_HOST}"; fi
if [[ -n "${{AZ_FAIL_ON:-}}" && "$*" == *"$AZ_FAIL_ON"* ]]; then echo "ERROR: (Conflict) $AZ_FAIL_ON failed" >&2; exit 1; fi
exit 0
"""
# The interpreter the script runs: the real one for the routing body, a verdict of the test's choosing for the gate.
FAKE_GATE = f"""#!/bin/bash
if [[ "$1" == -m && "$2" == components.canary_gate ]]; then
  printf '%s\\n' "${{@:3}}" > "$GATE_LOG"
  echo "canary: verdict: $GATE_SAYS" >&2
  if [[ -n "${{GATE_SLEEPS:-}}" ]]; then exec sleep "$GATE_SLEEPS"; fi
  exit "$GATE_EXIT"
fi
exec {sys.executable} "$@"
"""


@pytest.fixture
def workdir(tmp_path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("az", FAKE_AZ), ("gate-python", FAKE_GATE)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return tmp_path


def _release(infra, packages, workdir: Path, gate_exit: int, says: str = "", **env: str):
    canary = _commands(infra.run(_program(packages[0], POLICY)))["canary"]
    log = workdir / "az.log"
    environment = {
        "PATH": f"{workdir / 'bin'}:{os.environ['PATH']}",
        "AZ_LOG": str(log),
        "GATE_LOG": str(workdir / "gate.log"),
        "GATE_EXIT": str(gate_exit),
        "GATE_SAYS": says,
        # Run from the project root, as pulumi does, so the interpreter finds the components package.
        **canary.get("environment"),
        "GATE_PYTHON": str(workdir / "bin" / "gate-python"),
        **env,
    }
    process = subprocess.Popen(
        [*canary.get("interpreter"), canary.get("create")],
        cwd=Path(__file__).resolve().parents[2],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return process, log


def _finish(process, log: Path) -> tuple[int, str, str, list[list[str]]]:
    stdout, stderr = process.communicate(timeout=60)
    calls, current = [], []
    for line in log.read_text().splitlines() if log.exists() else []:
        if line == "--":
            calls.append(current)
            current = []
        else:
            current.append(line)
    return process.returncode, stdout, stderr, calls


def _routing(percent: float) -> list[str]:
    body = json.dumps(routing_rules("staging", SLOT_HOST, float(percent)))  # the script parses the percent as a float
    return ["rest", "--method", "patch", "--url", CONFIG_URL, "--body", body, "--output", "none"]


SHOW_SLOT = [
    "webapp", "show",
    "--subscription", SUBSCRIPTION, "--resource-group", "rg", "--name", "mcp-site0001",
    "--slot", "staging", "--query", "defaultHostName", "--output", "tsv",
]  # fmt: skip
SWAP = [
    "webapp", "deployment", "slot", "swap",
    "--subscription", SUBSCRIPTION, "--resource-group", "rg", "--name", "mcp-site0001",
    "--slot", "staging", "--target-slot", "production", "--output", "none",
]  # fmt: skip


def test_a_healthy_canary_is_promoted_routing_cleared_then_swapped(infra, packages, workdir):
    status, stdout, stderr, calls = _finish(*_release(infra, packages, workdir, GATE_PROMOTE, "promote"))
    assert status == 0, stderr
    assert calls == [SHOW_SLOT, _routing(10), _routing(0), SWAP]
    for call in calls:
        if call[0] == "rest":
            _validate(json.loads(call[call.index("--body") + 1]))  # what the script sends is what the spec allows
    assert "routing 10% of production traffic of mcp-site0001 to slot staging" in stdout
    assert f"promoted package {packages[0].sha256}" in stdout
    assert (workdir / "gate.log").read_text().split() == [
        "--app-insights", APP_INSIGHTS_ID, "--slot", "staging", "--percent", "10", "--minutes", "15",
        "--max-error-rate-points", "0.5", "--max-p95-ratio", "1.25", "--min-requests", "300",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("gate_exit", "says"),
    [
        (GATE_ROLL_BACK, "roll back - overall: error rate 4.00% against 0.10% in production"),
        (GATE_NOT_ENOUGH_DATA, "not enough data - staging has 12 sampled requests, 300 needed"),
    ],
)
def test_a_rolled_back_canary_fails_the_release_and_leaves_staging_as_it_is(infra, packages, workdir, gate_exit, says):
    status, _stdout, stderr, calls = _finish(*_release(infra, packages, workdir, gate_exit, says))
    assert status == 1
    assert calls == [SHOW_SLOT, _routing(10), _routing(0)]  # no swap, no redeploy: staging keeps the build
    assert says in stderr  # the gate's figures reach the failed command's output
    assert f"rolled back: production keeps its build; slot staging keeps package {packages[0].sha256}" in stderr


def test_a_failing_gate_rolls_back_with_its_status(infra, packages, workdir):
    status, _stdout, stderr, calls = _finish(*_release(infra, packages, workdir, 2, "no az login"))
    assert status == 2
    assert calls == [SHOW_SLOT, _routing(10), _routing(0)]
    assert "the gate failed (exit 2); rolled back" in stderr


def test_an_interrupted_release_clears_the_routing(infra, packages, workdir):
    process, log = _release(infra, packages, workdir, GATE_PROMOTE, "observing", GATE_SLEEPS="30")
    deadline = time.monotonic() + 20
    while not (workdir / "gate.log").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    status, _stdout, stderr, calls = _finish(process, log)
    assert status != 0
    assert "interrupted; the release is abandoned" in stderr
    assert calls == [SHOW_SLOT, _routing(10), _routing(0)]


def test_a_failed_swap_fails_the_release_with_azs_message(infra, packages, workdir):
    status, _stdout, stderr, calls = _finish(
        *_release(infra, packages, workdir, GATE_PROMOTE, "promote", AZ_FAIL_ON="slot swap")
    )
    assert status != 0
    assert "ERROR: (Conflict) slot swap failed" in stderr
    assert calls == [SHOW_SLOT, _routing(10), _routing(0), SWAP]


def test_a_slot_without_a_host_name_stops_before_any_routing(infra, packages, workdir):
    (workdir / "bin" / "az").write_text(FAKE_AZ.replace(f'echo "{SLOT_HOST}"', "true"))
    status, _stdout, stderr, calls = _finish(*_release(infra, packages, workdir, GATE_PROMOTE))
    assert status == 2
    assert "az reported no host name for slot staging of mcp-site0001" in stderr
    assert calls == [SHOW_SLOT]
