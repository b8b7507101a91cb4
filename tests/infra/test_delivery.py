"""Delivery: zip deploys and slot swaps as pulumi-command Commands, and the scripts they run.

Under mocks we assert what the engine receives (commands, triggers, target
slot, ordering); the scripts themselves run for real against a stand-in `az`
that records its arguments, so "fails loudly" is checked, not assumed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jsonschema
import pulumi
import pytest
from pulumi_azure_native import web

from components.delivery import (
    DEPLOY_SCRIPT,
    MIN_AZ_VERSION,
    NO_OP_UPDATE,
    REFERENCE_POLL_SECONDS,
    REFERENCE_TIMEOUT_SECONDS,
    SWAP_BASELINE_SCRIPT,
    SWAP_SCRIPT,
    Delivery,
    DeliveryArgs,
)
from components.package import PROJECT_ROOT, AppPackage, build_package
from components.site_config import STARTUP_COMMAND
from tests.infra.conftest import SUBSCRIPTION, StackRun

COMMAND = "command:local:Command"
SITE_ID = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg/providers/Microsoft.Web/sites/mcp-site0001"
KEY_VAULT_SETTINGS = ("MCP_HANDLE_KEYS", "MCP_REQUEST_STATE_KEYS")
SCHEMAS = Path(__file__).with_name("schemas")


def reference_environment(slots: str) -> dict[str, str]:
    """What every deploy command gets for the Key Vault reference check."""
    return {
        "REFERENCE_SLOTS": slots,
        "KEY_VAULT_SETTINGS": " ".join(KEY_VAULT_SETTINGS),
        "REFERENCE_TIMEOUT_SECONDS": str(REFERENCE_TIMEOUT_SECONDS),
        "REFERENCE_POLL_SECONDS": str(REFERENCE_POLL_SECONDS),
    }


@pytest.fixture(scope="module")
def packages(tmp_path_factory) -> tuple[AppPackage, AppPackage]:
    """Two packages of different content (the real app, then with one line changed)."""
    built = []
    for version in ("v1", "v2"):
        root = tmp_path_factory.mktemp(version)
        shutil.copytree(PROJECT_ROOT / "app", root / "app", ignore=shutil.ignore_patterns("__pycache__"))
        main = root / "app" / "main.py"
        main.write_text(main.read_text() + f"\n# {version}\n")
        built.append(build_package(root))
    first, second = built
    assert first.sha256 != second.sha256
    return first, second


def _program(package: AppPackage, staging_slot: str | None, swap: str | None):
    """A site, a slot (when on) and the Delivery wired to them, as __main__ does."""

    def program() -> None:
        site = web.WebApp("site", resource_group_name="rg", server_farm_id="plan-id", name="mcp-site0001")
        setup: list[pulumi.Resource] = []
        if staging_slot is not None:
            setup.append(web.WebAppSlot("slot", resource_group_name="rg", name=site.name, slot=staging_slot))
        Delivery(
            "delivery",
            DeliveryArgs(
                site_id=site.id,
                package=package,
                staging_slot=staging_slot,
                swap=swap,
                depends_on=setup,
                key_vault_settings=KEY_VAULT_SETTINGS,
                production_url=pulumi.Output.concat("https://", site.default_host_name),
            ),
        )

    return program


def _commands(run: StackRun) -> dict[str, object]:
    return {r.name.removeprefix("delivery-"): r for r in run.of_type(COMMAND)}


BUILD_A, BUILD_B = "a" * 64, "b" * 64
PRODUCTION_URL = "https://mcp-site0001.azurewebsites.net"


def _run(infra, program) -> StackRun:
    """``program`` under mocks, the swap baseline's stdout being the build production serves (BUILD_A)."""
    return infra.run(
        program, computed=lambda args: {"stdout": BUILD_A} if args.name == "delivery-swap-baseline" else None
    )


# ---------------------------------------------------------------------------
# Under mocks: which commands exist, what triggers them, where they deploy


def test_with_the_slot_code_goes_to_staging_on_each_package_hash(infra, packages):
    package, _ = packages
    run = _run(infra, _program(package, "staging", None))
    commands = _commands(run)
    assert set(commands) == {"staging-deploy", "production-deploy"}

    staging = commands["staging-deploy"]
    assert staging.get("create") == DEPLOY_SCRIPT
    assert staging.get("interpreter") == ["/bin/bash", "-c"]
    assert staging.get("triggers") == [SITE_ID, package.sha256]
    assert staging.get("environment") == {
        "SITE_ID": SITE_ID,
        "SLOT": "staging",
        "PACKAGE_PATH": "dist/app.zip",
        "PACKAGE_SHA256": package.sha256,
        **reference_environment("production staging"),
    }
    assert staging.get("addPreviousOutputInEnv") is False


def test_with_the_slot_production_gets_the_package_once_at_site_creation(infra, packages):
    first, second = packages
    production = [_commands(_run(infra, _program(p, "staging", None)))["production-deploy"] for p in (first, second)]
    # Nothing in its inputs depends on the package, so a new package never
    # reruns it; only a new site (new SITE_ID) creates it again.
    assert production[0].inputs == production[1].inputs
    assert production[0].get("triggers") == [SITE_ID]
    assert production[0].get("environment") == {
        "SITE_ID": SITE_ID,
        "PACKAGE_PATH": "dist/app.zip",
        **reference_environment("production staging"),
    }
    assert "SLOT" not in production[0].get("environment")


def test_a_new_package_changes_only_the_staging_trigger(infra, packages):
    first, second = packages
    staging = [_commands(_run(infra, _program(p, "staging", None)))["staging-deploy"] for p in (first, second)]
    assert staging[0].get("triggers") == [SITE_ID, first.sha256]
    assert staging[1].get("triggers") == [SITE_ID, second.sha256]


def test_without_the_slot_every_package_hash_deploys_to_production(infra, packages):
    package, _ = packages
    commands = _commands(_run(infra, _program(package, None, None)))
    assert set(commands) == {"production-deploy"}
    production = commands["production-deploy"]
    assert production.get("triggers") == [SITE_ID, package.sha256]
    assert production.get("environment") == {
        "SITE_ID": SITE_ID,
        "PACKAGE_PATH": "dist/app.zip",
        "PACKAGE_SHA256": package.sha256,
        **reference_environment("production"),
    }


def test_no_swap_command_while_swap_is_unset(infra, packages):
    commands = _commands(_run(infra, _program(packages[0], "staging", None)))
    assert "swap" not in commands


def test_setting_swap_creates_one_swap_of_staging_into_production(infra, packages):
    package, _ = packages
    run = _run(infra, _program(package, "staging", "1"))
    commands = _commands(run)
    swap = commands["swap"]
    assert swap.get("create") == SWAP_SCRIPT
    assert "az webapp deployment slot swap" in SWAP_SCRIPT and "--target-slot production" in SWAP_SCRIPT
    assert swap.get("triggers") == ["1"]
    probe = {"SITE_ID": SITE_ID, "PRODUCTION_URL": PRODUCTION_URL, "PROBE_RETRIES": "5", "SWAP": "1"}
    assert swap.get("environment") == {**probe, "SLOT": "staging", "BASELINE_BUILD": BUILD_A}
    baseline = commands["swap-baseline"]
    assert baseline.get("create") == SWAP_BASELINE_SCRIPT
    assert baseline.get("triggers") == ["1"] and baseline.get("environment") == probe
    # Ordered after both deploys: a swap never promotes a slot mid-deploy; its baseline is taken after them too.
    deploys = {commands["staging-deploy"].urn, commands["production-deploy"].urn}
    assert deploys <= baseline.dependencies
    assert deploys | {baseline.urn} <= swap.dependencies


def test_changing_swap_changes_only_the_swap_trigger(infra, packages):
    package, _ = packages
    one = _commands(_run(infra, _program(package, "staging", "1")))
    two = _commands(_run(infra, _program(package, "staging", "2")))
    for command in ("swap", "swap-baseline"):
        assert one[command].get("triggers") == ["1"]
        assert two[command].get("triggers") == ["2"]
    for deploy in ("staging-deploy", "production-deploy"):
        assert one[deploy].inputs == two[deploy].inputs  # a swap alone never redeploys


def test_commands_wait_for_the_site_setup_and_are_children_of_delivery(infra, packages):
    run = _run(infra, _program(packages[0], "staging", "1"))
    component = run.one("mcpscale:azure:Delivery")
    site = run.one("azure-native:web:WebApp")
    slot = run.one("azure-native:web:WebAppSlot")
    commands = _commands(run)
    assert set(commands) == {"staging-deploy", "production-deploy", "swap-baseline", "swap"}
    for name, command in commands.items():
        assert command.parent == component.urn, name
        assert {site.urn, slot.urn} <= command.dependencies, name


def test_every_command_has_a_no_op_update_and_is_replaced_only_on_its_triggers(infra, packages):
    commands = _commands(_run(infra, _program(packages[0], "staging", "1")))
    assert set(commands) == {"staging-deploy", "production-deploy", "swap-baseline", "swap"}
    for name, command in commands.items():
        assert command.get("update") == NO_OP_UPDATE, name
        assert set(command.replace_on_changes) == {"triggers[*]"}, name


# What the engine does with a Command between two `pulumi up`s, as
# pulumi-command documents it: a change under a ``replace_on_changes`` path is
# a replacement (the new command's ``create`` runs); any other input change is
# an update (``update`` runs, or ``create`` again when there is no ``update``).


def _step(old, new) -> str:
    if old is None:
        return "none" if new is None else "create"
    if new is None:
        return "delete"
    replace_paths = [path.removesuffix("[*]") for path in new.replace_on_changes]
    if any(old.inputs.get(path) != new.inputs.get(path) for path in replace_paths):
        return "replace"
    return "update" if old.inputs != new.inputs else "same"


def _script_for(step: str, command) -> str | None:
    """The script that a step runs: ``create`` on create/replace, ``update`` (or ``create``) on update."""
    if step in ("create", "replace"):
        return command.get("create")
    if step == "update":
        return command.get("update", None) or command.get("create")
    return None


def _steps(infra, before, after) -> dict[str, str]:
    old, new = _commands(_run(infra, before)), _commands(_run(infra, after))
    return {name: _step(old.get(name), new.get(name)) for name in sorted({*old, *new})}


def _edited_scripts(monkeypatch, program):
    """``program`` as it registers after an edit to every script, the interpreter and an environment value."""

    def edited() -> None:
        monkeypatch.setattr("components.delivery.DEPLOY_SCRIPT", DEPLOY_SCRIPT + "# edited\n")
        monkeypatch.setattr("components.delivery.SWAP_SCRIPT", SWAP_SCRIPT + "# edited\n")
        monkeypatch.setattr("components.delivery.SWAP_BASELINE_SCRIPT", SWAP_BASELINE_SCRIPT + "# edited\n")
        monkeypatch.setattr("components.delivery.INTERPRETER", ["/usr/bin/env", "bash", "-c"])
        monkeypatch.setattr("components.delivery.MIN_AZ_VERSION", "2.60.0")
        program()

    return edited


UNCHANGED_DEPLOYS = {"production-deploy": "same", "staging-deploy": "same"}


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("new package, slot on", {"production-deploy": "same", "staging-deploy": "replace"}),
        ("new package, slot off", {"production-deploy": "replace"}),
        ("swap unset -> set", {**UNCHANGED_DEPLOYS, "swap-baseline": "create", "swap": "create"}),
        ("swap set -> changed", {**UNCHANGED_DEPLOYS, "swap-baseline": "replace", "swap": "replace"}),
        ("swap set -> unset", {**UNCHANGED_DEPLOYS, "swap-baseline": "delete", "swap": "delete"}),
        ("swap set, unchanged", {**UNCHANGED_DEPLOYS, "swap-baseline": "same", "swap": "same"}),
        ("slot off -> on", {"production-deploy": "replace", "staging-deploy": "create"}),
    ],
)
def test_config_changes_replace_exactly_the_commands_they_should(infra, packages, case, expected):
    first, second = packages
    before, after = {
        "new package, slot on": ((first, "staging", None), (second, "staging", None)),
        "new package, slot off": ((first, None, None), (second, None, None)),
        "swap unset -> set": ((first, "staging", None), (first, "staging", "1")),
        "swap set -> changed": ((first, "staging", "1"), (first, "staging", "2")),
        "swap set -> unset": ((first, "staging", "1"), (first, "staging", None)),
        "swap set, unchanged": ((first, "staging", "1"), (first, "staging", "1")),
        "slot off -> on": ((first, None, None), (first, "staging", None)),
    }[case]
    assert _steps(infra, _program(*before), _program(*after)) == expected


@pytest.mark.parametrize(("slot", "swap"), [("staging", "1"), (None, None)])
def test_editing_scripts_interpreter_or_environment_only_updates_and_runs_nothing(
    infra, packages, workdir, monkeypatch, slot, swap
):
    program = _program(packages[0], slot, swap)
    old = _commands(_run(infra, program))
    new = _commands(_run(infra, _edited_scripts(monkeypatch, program)))
    assert set(new) == set(old)
    for name, command in new.items():
        assert command.get("create") != old[name].get("create"), name
        step = _step(old[name], command)
        assert step == "update", name
        script = _script_for(step, command)
        result = subprocess.run(
            [*command.get("interpreter"), script], cwd=workdir, capture_output=True, text=True, timeout=30, check=False
        )
        assert result.returncode == 0 and "nothing deployed or swapped" in result.stdout, name


def test_a_replaced_site_gets_the_package_in_production_once_more(infra, packages):
    def on_site(site_name: str):
        def program() -> None:
            site = web.WebApp("site", resource_group_name="rg", server_farm_id="plan-id", name=site_name)
            slot = web.WebAppSlot("slot", resource_group_name="rg", name=site.name, slot="staging")
            Delivery(
                "delivery",
                DeliveryArgs(site_id=site.id, package=packages[0], staging_slot="staging", depends_on=[slot]),
            )

        return program

    steps = _steps(infra, on_site("mcp-site0001"), on_site("mcp-site0002"))
    assert steps == {"production-deploy": "replace", "staging-deploy": "replace"}


def test_swap_without_the_staging_slot_is_refused_before_registration(infra, packages):
    with pytest.raises(ValueError, match="swap='1' needs the staging slot"):
        _run(infra, _program(packages[0], None, "1"))
    assert infra.last.of_type(COMMAND) == []


@pytest.mark.parametrize(
    ("slot", "swap", "message"),
    [("", None, "staging_slot"), ("production", None, "staging_slot"), ("staging", "  ", "swap")],
)
def test_bad_arguments_are_named(packages, slot, swap, message):
    with pytest.raises(ValueError, match=message):
        DeliveryArgs(site_id=SITE_ID, package=packages[0], staging_slot=slot, swap=swap)


# ---------------------------------------------------------------------------
# The scripts, run for real with a stand-in `az`

# A stand-in `az`: records each call; a slot swap exchanges the builds in AZ_SLOTS (which the stand-in production
# serves) before it fails as AZ_FAIL says, as Azure can; `az rest` answers from AZ_RESPONSES (method + ARM path ->
# the responses
# of successive calls, the last one repeated), applying --query with jmespath, the library az itself uses.
FAKE_AZ = f"""#!{sys.executable}
import json, os, sys, urllib.parse
import jmespath

args = sys.argv[1:]
if args[:1] == ["version"]:
    print(os.environ.get("AZ_VERSION", "2.67.0"))
    sys.exit(0)
with open(os.environ["AZ_LOG"], "a") as log:
    log.write("\\n".join(args) + "\\n--\\n")
if args[:4] == ["webapp", "deployment", "slot", "swap"] and os.environ.get("AZ_SLOTS"):
    slots = json.load(open(os.environ["AZ_SLOTS"]))
    slots["production"], slots["staging"] = slots["staging"], slots["production"]
    json.dump(slots, open(os.environ["AZ_SLOTS"], "w"))
if os.environ.get("AZ_FAIL") and " ".join(args).startswith(os.environ.get("AZ_FAIL_COMMAND", "")):
    print(os.environ["AZ_FAIL"], file=sys.stderr)
    sys.exit(1)
if os.environ.get("AZ_STDOUT_COMMAND") and " ".join(args).startswith(os.environ["AZ_STDOUT_COMMAND"]):
    print(os.environ.get("AZ_STDOUT", ""))
if args[:1] != ["rest"]:
    sys.exit(0)
option = dict(zip(args[1::2], args[2::2]))
key = option["--method"].upper() + " " + urllib.parse.urlsplit(option["--uri"]).path
responses = json.load(open(os.environ["AZ_RESPONSES"])) if os.environ.get("AZ_RESPONSES") else {{}}
answers = responses.get(key, [{{"value": []}}] if key.startswith("GET ") else [None])
counts_file = os.environ["AZ_LOG"] + ".counts"
counts = json.load(open(counts_file)) if os.path.exists(counts_file) else {{}}
answer = answers[min(counts.get(key, 0), len(answers) - 1)]
counts[key] = counts.get(key, 0) + 1
json.dump(counts, open(counts_file, "w"))
if "--query" in option:
    answer = jmespath.search(option["--query"], answer)
if option.get("--output") == "none" or answer is None:
    sys.exit(0)
if option.get("--output") == "tsv":
    rows = answer if isinstance(answer, list) else [answer]
    for row in rows:
        cells = row if isinstance(row, list) else [row]
        print("\\t".join("" if cell is None else str(cell) for cell in cells))
else:
    print(json.dumps(answer))
"""

ARM = "https://management.azure.com"
SITE_PATH = SITE_ID
SLOT_PATH = f"{SITE_ID}/slots/staging"
VAULT_URI = "https://kv0001.vault.azure.net/"


def references(path: str, **statuses: str | tuple[str, str]) -> dict:
    """GET .../config/configreferences/appsettings as Azure answers it: setting -> status (or (status, details))."""
    value = []
    for setting, status in statuses.items():
        status, details = status if isinstance(status, tuple) else (status, "Reference has been successfully resolved.")
        secret = setting.lower().replace("_", "-")
        value.append(
            {
                "id": f"{path}/config/configreferences/appsettings/{setting}",
                "name": setting,
                "type": "Microsoft.Web/sites/config/configreferences",
                "properties": {
                    "reference": f"@Microsoft.KeyVault(SecretUri={VAULT_URI}secrets/{secret}/)",
                    "status": status,
                    "vaultName": "kv0001",
                    "secretName": secret,
                    "identityType": {"type": "SystemAssigned"},
                    "details": details,
                    "source": "KeyVault",
                },
            }
        )
    collection = {"value": value}
    schema = json.loads((SCHEMAS / "webapps_2025-05-01.schema.json").read_text())
    jsonschema.validate(collection, {**schema, "$ref": "#/definitions/ApiKVReferenceCollection"})
    return collection


def listing(path: str) -> str:
    return f"GET {path}/config/configreferences/appsettings"


def refresh(path: str) -> str:
    return f"POST {path}/config/configreferences/appsettings/refresh"


RESOLVED = {key: "Resolved" for key in KEY_VAULT_SETTINGS}


def all_resolved(*paths: str) -> dict[str, list]:
    return {listing(path): [references(path, **RESOLVED)] for path in paths}


@pytest.fixture
def workdir(tmp_path, packages) -> Path:
    """A project root holding the first package at its relative path, and a bin/ with the fake az."""
    (tmp_path / "dist").mkdir()
    shutil.copy(packages[0].path, tmp_path / "dist" / "app.zip")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    az = bin_dir / "az"
    az.write_text(FAKE_AZ)
    az.chmod(0o755)
    return tmp_path


def _run_script(
    command, workdir: Path, responses: dict[str, list] | None = None, **env: str
) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    """Run a recorded Command's script the way pulumi-command does: interpreter + create, its environment.

    ``responses`` is what `az rest` answers (see FAKE_AZ); by default every Key Vault reference of every slot the
    command checks is resolved.
    """
    log = workdir / "az.log"
    log.unlink(missing_ok=True)
    Path(f"{log}.counts").unlink(missing_ok=True)
    if responses is None:
        slots = command.get("environment").get("REFERENCE_SLOTS", "").split()
        paths = [SITE_PATH if slot == "production" else f"{SITE_PATH}/slots/{slot}" for slot in slots]
        responses = all_resolved(*paths)
    (workdir / "responses.json").write_text(json.dumps(responses))
    environment = {
        "PATH": f"{workdir / 'bin'}:{os.environ['PATH']}",
        "AZ_LOG": str(log),
        "AZ_RESPONSES": str(workdir / "responses.json"),
        **command.get("environment"),
        **env,
    }
    result = subprocess.run(
        [*command.get("interpreter"), command.get("create")],
        cwd=workdir,
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    calls = []
    if log.exists():
        current: list[str] = []
        for line in log.read_text().splitlines():
            if line == "--":
                calls.append(current)
                current = []
            else:
                current.append(line)
    return result, calls


def _not_rest(calls: list[list[str]]) -> list[list[str]]:
    """The calls other than `az rest` (the Key Vault reference check)."""
    return [call for call in calls if call[:1] != ["rest"]]


def test_staging_deploy_runs_az_webapp_deploy_for_the_slot(infra, packages, workdir):
    staging = _commands(_run(infra, _program(packages[0], "staging", None)))["staging-deploy"]
    result, calls = _run_script(staging, workdir)
    assert result.returncode == 0, result.stderr
    assert _not_rest(calls) == [
        [
            "webapp", "deploy",
            "--subscription", SUBSCRIPTION,
            "--resource-group", "rg",
            "--name", "mcp-site0001",
            "--slot", "staging",
            "--src-path", "dist/app.zip",
            "--type", "zip",
            "--output", "none",
        ]
    ]  # fmt: skip


def test_production_deploy_has_no_slot_argument(infra, packages, workdir):
    production = _commands(_run(infra, _program(packages[0], "staging", None)))["production-deploy"]
    result, calls = _run_script(production, workdir)
    assert result.returncode == 0, result.stderr
    (call,) = _not_rest(calls)
    assert call[:2] == ["webapp", "deploy"] and "--slot" not in call
    assert call[call.index("--name") + 1] == "mcp-site0001"


SWAP_CALL = [
    "webapp", "deployment", "slot", "swap",
    "--subscription", SUBSCRIPTION,
    "--resource-group", "rg",
    "--name", "mcp-site0001",
    "--slot", "staging",
    "--target-slot", "production",
    "--output", "none",
]  # fmt: skip


@dataclass
class StandInProduction:
    """Production's /health on 127.0.0.1, serving the build ``slots`` says production has (None: no build id)."""

    url: str
    slots: Path

    def serves(self) -> str | None:
        return json.loads(self.slots.read_text())["production"]

    def environment(self, **env: str) -> dict[str, str]:
        """What the swap commands need to reach it (and the fake az to swap its builds), plus ``env``."""
        return {"PRODUCTION_URL": self.url, "AZ_SLOTS": str(self.slots), "PROBE_RETRIES": "0", **env}


@pytest.fixture
def production(workdir) -> Iterator[StandInProduction]:
    slots = workdir / "slots.json"
    slots.write_text(json.dumps({"production": BUILD_A, "staging": BUILD_B}))

    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/health":
                self.send_error(404)
                return
            build = json.loads(slots.read_text())["production"]
            body = json.dumps({"status": "ok"} | ({"build": build} if build else {})).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield StandInProduction(f"http://127.0.0.1:{server.server_port}", slots)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _swap_commands(infra, packages, swap: str = "7"):
    commands = _commands(_run(infra, _program(packages[0], "staging", swap)))
    return commands["swap-baseline"], commands["swap"]


def _baseline(command, workdir: Path, production: StandInProduction) -> str:
    result, calls = _run_script(command, workdir, **production.environment())
    assert result.returncode == 0, result.stderr
    assert calls == []
    return result.stdout


def test_the_swap_baseline_is_the_build_production_serves(infra, packages, workdir, production):
    baseline, _ = _swap_commands(infra, packages)
    assert _baseline(baseline, workdir, production) == f"{BUILD_A}\n"


def test_a_swap_swaps_staging_into_production_while_production_serves_the_baseline(
    infra, packages, workdir, production
):
    baseline, swap = _swap_commands(infra, packages)
    build = _baseline(baseline, workdir, production)
    result, calls = _run_script(swap, workdir, **production.environment(BASELINE_BUILD=build))
    assert result.returncode == 0, result.stderr
    assert calls == [SWAP_CALL]
    assert production.serves() == BUILD_B
    assert "slot staging is now production of mcp-site0001 (swap '7')" in result.stdout


def test_a_swap_azure_did_but_reported_failed_is_not_undone_by_the_next_up(infra, packages, workdir, production):
    baseline, swap = _swap_commands(infra, packages)
    build = _baseline(baseline, workdir, production)  # succeeded: kept in the state with its output
    failed, calls = _run_script(
        swap,
        workdir,
        **production.environment(
            BASELINE_BUILD=build, AZ_FAIL="ERROR: Operation timed out", AZ_FAIL_COMMAND="webapp deployment slot swap"
        ),
    )
    assert failed.returncode != 0 and calls == [SWAP_CALL]
    assert production.serves() == BUILD_B  # the routing switched anyway
    # The next `pulumi up` creates the failed swap again, with the baseline's output from the state.
    again = _commands(_run(infra, _program(packages[0], "staging", "7")))
    assert again["swap"].inputs == swap.inputs and _step(baseline, again["swap-baseline"]) == "same"
    retried, calls = _run_script(again["swap"], workdir, **production.environment(BASELINE_BUILD=build))
    assert retried.returncode == 0, retried.stderr
    assert calls == []
    assert production.serves() == BUILD_B
    assert f"serves build {BUILD_B}, not {BUILD_A} as when swap '7' was requested" in retried.stdout
    assert "nothing swapped" in retried.stdout


def test_a_new_swap_value_after_a_swap_swaps_back(infra, packages, workdir, production):
    baseline, swap = _swap_commands(infra, packages, "7")
    _run_script(swap, workdir, **production.environment(BASELINE_BUILD=_baseline(baseline, workdir, production)))
    assert production.serves() == BUILD_B
    baseline, swap = _swap_commands(infra, packages, "8")  # a new value: both are replaced, the baseline taken again
    result, calls = _run_script(
        swap, workdir, **production.environment(BASELINE_BUILD=_baseline(baseline, workdir, production))
    )
    assert result.returncode == 0, result.stderr
    assert calls == [SWAP_CALL]
    assert production.serves() == BUILD_A


def test_production_on_a_build_without_a_build_id_is_swapped(infra, packages, workdir, production):
    production.slots.write_text(json.dumps({"production": None, "staging": BUILD_B}))
    baseline, swap = _swap_commands(infra, packages)
    build = _baseline(baseline, workdir, production)
    assert build == "none\n"
    result, calls = _run_script(swap, workdir, **production.environment(BASELINE_BUILD=build))
    assert result.returncode == 0, result.stderr
    assert calls == [SWAP_CALL]


@pytest.mark.parametrize("which", ["swap-baseline", "swap"])
def test_a_production_that_does_not_answer_stops_before_any_swap(infra, packages, workdir, production, which):
    command = dict(zip(("swap-baseline", "swap"), _swap_commands(infra, packages)))[which]
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        unreachable = f"http://127.0.0.1:{closed.getsockname()[1]}"
    result, calls = _run_script(
        command, workdir, **production.environment(PRODUCTION_URL=unreachable, BASELINE_BUILD=BUILD_A)
    )
    assert result.returncode == 5
    assert f"did not answer {unreachable}/health" in result.stderr
    assert calls == []


def test_a_swap_without_its_baseline_is_refused(infra, packages, workdir, production):
    _, swap = _swap_commands(infra, packages)
    result, calls = _run_script(swap, workdir, **production.environment(BASELINE_BUILD=""))
    assert result.returncode == 2
    assert "BASELINE_BUILD is empty" in result.stderr
    assert calls == []


@pytest.mark.parametrize("which", ["staging-deploy", "swap"])
def test_an_az_failure_fails_the_command_with_azs_message(infra, packages, workdir, production, which):
    command = _commands(_run(infra, _program(packages[0], "staging", "1")))[which]
    result, calls = _run_script(
        command,
        workdir,
        **production.environment(
            BASELINE_BUILD=BUILD_A,
            AZ_FAIL="ERROR: (Conflict) Deployment failed: Oryx build error",
            AZ_FAIL_COMMAND="webapp",
        ),
    )
    assert result.returncode != 0
    assert "ERROR: (Conflict) Deployment failed: Oryx build error" in result.stderr
    assert "delivery: deployed" not in result.stdout and "is now production" not in result.stdout
    assert len(_not_rest(calls)) == 1


# ---------------------------------------------------------------------------
# Key Vault references: refreshed and resolved on every slot before any code is deployed


def _rest_calls(calls: list[list[str]]) -> list[tuple[str, str]]:
    """Each `az rest` call as (method, ARM path)."""
    found = []
    for call in _rest(calls):
        option = dict(zip(call[1::2], call[2::2]))
        found.append((option["--method"], option["--uri"].removeprefix(ARM).split("?")[0]))
    return found


def _rest(calls: list[list[str]]) -> list[list[str]]:
    return [call for call in calls if call[:1] == ["rest"]]


@pytest.mark.parametrize(
    ("which", "slot"), [("staging-deploy", "staging"), ("production-deploy", "staging"), ("production-deploy", None)]
)
def test_every_deploy_first_refreshes_and_reads_the_references_of_every_slot(infra, packages, workdir, which, slot):
    command = _commands(_run(infra, _program(packages[0], slot, None)))[which]
    result, calls = _run_script(command, workdir)
    assert result.returncode == 0, result.stderr
    paths = [SITE_PATH] + ([SLOT_PATH] if slot else [])
    expected = [call for path in paths for call in (("post", refresh(path)[5:]), ("get", listing(path)[4:]))]
    assert _rest_calls(calls) == expected
    assert calls[-1][:2] == ["webapp", "deploy"]  # the deploy comes after the check
    uris = [dict(zip(c[1::2], c[2::2]))["--uri"] for c in _rest(calls)]
    assert all(u.endswith("refresh?api-version=2022-03-01") for u in uris[0::2])
    assert all(u.endswith("appsettings?api-version=2025-05-01") for u in uris[1::2])


def test_a_resolved_check_prints_one_line_per_setting_and_slot(infra, packages, workdir):
    staging = _commands(_run(infra, _program(packages[0], "staging", None)))["staging-deploy"]
    result, _ = _run_script(staging, workdir)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if "Key Vault reference" in line]
    assert lines == [
        "delivery: Key Vault reference MCP_HANDLE_KEYS of mcp-site0001 (production) is Resolved",
        "delivery: Key Vault reference MCP_REQUEST_STATE_KEYS of mcp-site0001 (production) is Resolved",
        "delivery: Key Vault reference MCP_HANDLE_KEYS of mcp-site0001 (slot staging) is Resolved",
        "delivery: Key Vault reference MCP_REQUEST_STATE_KEYS of mcp-site0001 (slot staging) is Resolved",
    ]


def test_a_reference_denied_while_the_role_assignment_applies_is_refreshed_until_resolved(infra, packages, workdir):
    staging = _commands(_run(infra, _program(packages[0], "staging", None)))["staging-deploy"]
    denied = (
        "AccessToKeyVaultDenied",
        "Key Vault reference was not able to be resolved because site was denied access.",
    )
    responses = {
        **all_resolved(SITE_PATH),
        listing(SLOT_PATH): [
            references(SLOT_PATH, MCP_HANDLE_KEYS=denied, MCP_REQUEST_STATE_KEYS=denied),
            references(SLOT_PATH, MCP_HANDLE_KEYS="Resolved", MCP_REQUEST_STATE_KEYS=denied),
            references(SLOT_PATH, **RESOLVED),
        ],
    }
    result, calls = _run_script(staging, workdir, responses, REFERENCE_POLL_SECONDS="0")
    assert result.returncode == 0, result.stderr
    # Production resolved at once and is not refreshed again; the slot is, until its references resolve.
    assert [path for method, path in _rest_calls(calls) if method == "post"] == [
        refresh(SITE_PATH)[5:], refresh(SLOT_PATH)[5:], refresh(SLOT_PATH)[5:], refresh(SLOT_PATH)[5:]
    ]
    assert _not_rest(calls)[0][:2] == ["webapp", "deploy"]
    assert result.stdout.count("is Resolved") == 4


def test_references_unresolved_at_the_deadline_fail_the_deploy_naming_each_setting_status_and_details(
    infra, packages, workdir
):
    staging = _commands(_run(infra, _program(packages[0], "staging", None)))["staging-deploy"]
    responses = {
        **all_resolved(SITE_PATH),
        listing(SLOT_PATH): [
            references(
                SLOT_PATH,
                MCP_HANDLE_KEYS=("SecretNotFound", "The secret mcp-handle-keys was not found in kv0001."),
                MCP_REQUEST_STATE_KEYS="Resolved",
            )
        ],
    }
    result, calls = _run_script(staging, workdir, responses, REFERENCE_TIMEOUT_SECONDS="0")
    assert result.returncode == 4
    assert (
        "delivery: Key Vault reference MCP_HANDLE_KEYS of mcp-site0001 (slot staging) is SecretNotFound: "
        "The secret mcp-handle-keys was not found in kv0001." in result.stderr
    )
    assert "MCP_REQUEST_STATE_KEYS" not in result.stderr
    assert "still unresolved after 0s; nothing deployed" in result.stderr
    assert _not_rest(calls) == []


def test_a_key_vault_setting_app_service_does_not_list_is_unresolved(infra, packages, workdir):
    production = _commands(_run(infra, _program(packages[0], None, None)))["production-deploy"]
    responses = {listing(SITE_PATH): [references(SITE_PATH, MCP_HANDLE_KEYS="Resolved")]}
    result, calls = _run_script(production, workdir, responses, REFERENCE_TIMEOUT_SECONDS="0")
    assert result.returncode == 4
    assert "MCP_REQUEST_STATE_KEYS of mcp-site0001 (production) is not listed" in result.stderr
    assert _not_rest(calls) == []


def test_a_failing_refresh_fails_the_deploy_with_azs_message(infra, packages, workdir):
    staging = _commands(_run(infra, _program(packages[0], "staging", None)))["staging-deploy"]
    result, calls = _run_script(
        staging, workdir, AZ_FAIL="ERROR: (AuthorizationFailed) no access", AZ_FAIL_COMMAND="rest"
    )
    assert result.returncode != 0
    assert "ERROR: (AuthorizationFailed) no access" in result.stderr
    assert _not_rest(calls) == []


@pytest.mark.parametrize("names", [("MCP HANDLE",), ("$(reboot)",)])
def test_a_key_vault_setting_name_that_is_no_app_setting_name_is_refused(packages, names):
    with pytest.raises(ValueError, match="key_vault_settings"):
        DeliveryArgs(site_id=SITE_ID, package=packages[0], staging_slot="staging", key_vault_settings=names)


def test_a_package_whose_hash_differs_from_the_trigger_is_not_deployed(infra, packages, workdir):
    staging = _commands(_run(infra, _program(packages[0], "staging", None)))["staging-deploy"]
    shutil.copy(packages[1].path, workdir / "dist" / "app.zip")  # different content at the same path
    result, calls = _run_script(staging, workdir)
    assert result.returncode == 3
    assert f"expected {packages[0].sha256}" in result.stderr
    assert calls == []


def test_a_missing_package_is_named(infra, packages, workdir):
    staging = _commands(_run(infra, _program(packages[0], "staging", None)))["staging-deploy"]
    (workdir / "dist" / "app.zip").unlink()
    result, calls = _run_script(staging, workdir)
    assert result.returncode == 2
    assert "package 'dist/app.zip' not found" in result.stderr
    assert calls == []


def test_a_missing_az_is_named(infra, packages, workdir):
    staging = _commands(_run(infra, _program(packages[0], "staging", None)))["staging-deploy"]
    result, _calls = _run_script(staging, workdir, PATH=str(workdir / "empty"))
    assert result.returncode == 127
    assert "'az' is not on PATH" in result.stderr


@pytest.mark.parametrize("version", ["2.40.0", "2.48.0", "", "garbage"])
def test_an_az_older_than_needed_is_named_before_anything_runs(infra, packages, workdir, version):
    staging = _commands(_run(infra, _program(packages[0], "staging", None)))["staging-deploy"]
    result, calls = _run_script(staging, workdir, AZ_VERSION=version)
    assert result.returncode == 2
    found = version if version else "(version unreadable)"
    assert f"delivery: az {found} found, {MIN_AZ_VERSION} or later needed" in result.stderr
    assert calls == []


@pytest.mark.parametrize("version", [MIN_AZ_VERSION, "2.49.0", "2.100.1"])
def test_an_az_at_or_above_the_minimum_deploys(infra, packages, workdir, version):
    staging = _commands(_run(infra, _program(packages[0], "staging", None)))["staging-deploy"]
    result, calls = _run_script(staging, workdir, AZ_VERSION=version)
    assert result.returncode == 0, result.stderr
    assert len(_not_rest(calls)) == 1


def test_a_malformed_site_id_is_named(infra, packages, workdir):
    staging = _commands(_run(infra, _program(packages[0], "staging", None)))["staging-deploy"]
    result, calls = _run_script(staging, workdir, SITE_ID="mcp-site0001")
    assert result.returncode == 2
    assert "SITE_ID 'mcp-site0001' is not an App Service site id" in result.stderr
    assert calls == []


# ---------------------------------------------------------------------------
# The whole program: Delivery wired after the site and slot


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_stack_deploys_the_projects_package_after_site_and_slot(infra, stack):
    config = infra.stack_config(stack)
    run = infra.run_main(config)
    slot_on = str(config.get("mcpscale-azure:stagingSlot", True)).lower() == "true"
    commands = _commands(run)
    expected = {"staging-deploy", "production-deploy"} if slot_on else {"production-deploy"}
    assert set(commands) == expected
    package = build_package()
    assert run.outputs["packageSha256"].value == package.sha256
    deploy = commands["staging-deploy" if slot_on else "production-deploy"]
    site = run.one("azure-native:web:WebApp")
    assert deploy.get("triggers") == [site.outputs["id"], package.sha256]
    assert deploy.get("environment")["PACKAGE_PATH"] == "dist/app.zip"
    assert deploy.get("environment")["SITE_ID"] == site.outputs["id"]
    assert deploy.get("environment")["KEY_VAULT_SETTINGS"] == "MCP_HANDLE_KEYS MCP_REQUEST_STATE_KEYS"
    assert deploy.get("environment")["REFERENCE_SLOTS"] == ("production staging" if slot_on else "production")
    settings = [run.one("azure-native:web:WebAppApplicationSettings")]
    if slot_on:
        settings.append(run.one("azure-native:web:WebAppApplicationSettingsSlot"))
    waits_for = {site.urn, *(s.urn for s in settings)}
    waits_for |= {run.one("azure-native:web:WebAppSlot").urn} if slot_on else set()
    for name, command in commands.items():
        assert waits_for <= command.dependencies, name


def test_the_swap_config_value_drives_the_swap_command(infra):
    config = infra.stack_config("prod")
    assert "swap" not in _commands(infra.run_main(config))
    swap = _commands(infra.run_main({**config, "swap": "release-42"}))["swap"]
    assert swap.get("triggers") == ["release-42"]
    assert swap.get("environment")["SLOT"] == "staging"


def test_swap_with_the_slot_off_fails_before_any_resource(infra):
    config = {**infra.stack_config("prod"), "stagingSlot": False, "swap": "1"}
    with pytest.raises(Exception, match="swap"):
        infra.run_main(config)
    assert infra.last.resources == []


def test_site_and_slot_build_on_deploy_and_start_the_packaged_app(infra):
    run = infra.run_main(infra.stack_config("prod"))
    package = build_package()
    module = STARTUP_COMMAND.split()[STARTUP_COMMAND.split().index("-m") + 1]
    assert f"{module}/__main__.py" in package.entries  # `python -m app` finds its entry point in the zip
    for target in (run.one("azure-native:web:WebApp"), run.one("azure-native:web:WebAppSlot")):
        assert target.get("siteConfig.appCommandLine") == STARTUP_COMMAND
    for settings in (
        run.one("azure-native:web:WebAppApplicationSettings"),
        run.one("azure-native:web:WebAppApplicationSettingsSlot"),
    ):
        assert settings.get("properties.SCM_DO_BUILD_DURING_DEPLOYMENT") == "true"


# ---------------------------------------------------------------------------
# Region by region (RegionalSwaps), as the fleet wires it with Front Door on


def test_regions_swap_one_after_the_other_each_after_the_previous_one_is_verified(infra):
    from components.delivery import LOCKED_SWAP_SCRIPT, VERIFY_SCRIPT
    from tests.infra.test_front_door import computed as front_door_outputs

    config = {**infra.stack_config("prod"), "regions": "westeurope,northeurope,swedencentral", "frontDoor": True}
    run = infra.run_main(
        {**config, "swap": "7"},
        computed=lambda a: front_door_outputs(a) or ({"stdout": BUILD_A} if a.name.endswith("swap-baseline") else None),
    )
    commands = {r.name: r for r in run.of_type(COMMAND)}
    deploys = {c.urn for n, c in commands.items() if n.endswith("-deploy")}
    assert len(deploys) == 6  # staging and production, per region
    previous = None
    for region in ("westeurope", "northeurope", "swedencentral"):
        baseline, swap, verify = (commands[f"rollout-{region}-{step}"] for step in ("swap-baseline", "swap", "verify"))
        assert deploys <= baseline.dependencies and deploys <= swap.dependencies
        assert baseline.urn in swap.dependencies and swap.urn in verify.dependencies
        if previous is not None:
            assert previous.urn in baseline.dependencies and previous.urn in swap.dependencies
        assert swap.get("create") == LOCKED_SWAP_SCRIPT and verify.get("create") == VERIFY_SCRIPT
        assert verify.get("environment")["REGION"] == region
        assert {c.get("triggers")[0] for c in (baseline, swap, verify)} == {"7"}
        previous = verify
    # The primary's swap takes over the single-region delivery's, so turning Front Door on swaps nothing again.
    (alias,) = commands["rollout-westeurope-swap"].request.aliases
    assert alias.spec.name == "delivery-swap" and alias.spec.parentUrn == next(
        d.urn for d in run.of_type("mcpscale:azure:Delivery") if d.name == "delivery"
    )
    assert not [n for n in commands if n.startswith("delivery") and "swap" in n]


def _regional(packages, regions=("westeurope", "northeurope")):
    from components.delivery import RegionalSwaps, RegionalSwapsArgs, RegionTarget

    def program() -> None:
        site = web.WebApp("site", resource_group_name="rg", server_farm_id="plan-id", name="mcp-site0001")
        site_url = pulumi.Output.concat("https://", site.default_host_name)
        RegionalSwaps(
            "rollout",
            RegionalSwapsArgs(
                regions=[
                    RegionTarget(region, site.id, site_url, "staging", []) for region in regions
                ],
                swap="7",
                build_id=BUILD_B,
            ),
        )

    return program


def _restrictions(calls: list[list[str]]) -> list[tuple[str, ...]]:
    """The access-restriction calls: (verb, rule name, address) each."""
    found = []
    for call in calls:
        if call[:3] == ["webapp", "config", "access-restriction"]:
            option = dict(zip(call[4::2], call[5::2]))
            found.append((call[3], option.get("--rule-name", ""), option.get("--ip-address", "")))
    return found


CLIENT = {"MCP_DELIVERY_CLIENT_ADDRESS": "203.0.113.7"}
ADMITTED = [("show", "", ""), ("add", "mcpscale-delivery", "203.0.113.7/32"), ("remove", "mcpscale-delivery", "")]


def test_a_region_is_verified_through_its_own_host_with_a_rule_for_the_deployer_removed_after(
    infra, packages, workdir, production
):
    commands = {r.name: r for r in infra.run(_regional(packages)).of_type(COMMAND)}
    production.slots.write_text(json.dumps({"production": BUILD_B, "staging": BUILD_A}))
    result, calls = _run_script(commands["rollout-westeurope-verify"], workdir, **production.environment(**CLIENT))
    assert result.returncode == 0, result.stderr
    assert _restrictions(calls) == ADMITTED
    assert f"region westeurope: production of mcp-site0001 answers through {production.url} with build" in result.stdout


def test_a_region_serving_another_build_stops_the_rollout_naming_it_and_still_removes_the_rule(
    infra, packages, workdir, production
):
    commands = {r.name: r for r in infra.run(_regional(packages)).of_type(COMMAND)}
    result, calls = _run_script(commands["rollout-northeurope-verify"], workdir, **production.environment(**CLIENT))
    assert result.returncode == 7
    assert (
        f"region northeurope: production of mcp-site0001 serves build {BUILD_A}, not {BUILD_B}, after swap '7'; "
        "stopped here, the regions after northeurope keep the build they serve"
    ) in result.stderr
    assert _restrictions(calls) == ADMITTED


def test_a_rule_a_killed_run_left_is_removed_before_the_next_is_added(infra, packages, workdir, production):
    commands = {r.name: r for r in infra.run(_regional(packages)).of_type(COMMAND)}
    leftover = {"AZ_STDOUT_COMMAND": "webapp config access-restriction show", "AZ_STDOUT": "mcpscale-delivery"}
    result, calls = _run_script(
        commands["rollout-westeurope-swap"],
        workdir,
        **production.environment(**CLIENT, **leftover, BASELINE_BUILD=BUILD_A),
    )
    assert result.returncode == 0, result.stderr
    assert _restrictions(calls) == [("show", "", ""), ("remove", "mcpscale-delivery", ""), *ADMITTED[1:]]
    assert SWAP_CALL in calls and calls.index(SWAP_CALL) < len(calls) - 1  # swapped while admitted
    assert production.serves() == BUILD_B


def test_without_a_public_address_nothing_is_swapped(infra, packages, workdir, production):
    commands = {r.name: r for r in infra.run(_regional(packages)).of_type(COMMAND)}
    result, calls = _run_script(
        commands["rollout-westeurope-swap"],
        workdir,
        **production.environment(MCP_DELIVERY_CLIENT_ADDRESS="not-an-address", BASELINE_BUILD=BUILD_A),
    )
    assert result.returncode == 6
    assert "region westeurope: 'not-an-address' is not an IPv4 address" in result.stderr
    assert calls == []
