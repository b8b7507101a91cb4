"""Run Pulumi programs under mocks and record what the engine would receive.

No Pulumi CLI or Azure exists where the tests run, so every infra test drives
the real program through ``pulumi.runtime.set_mocks`` and asserts on what a
``RecordingMonitor`` saw: for each resource its type, logical name, inputs as
sent on the wire (camelCase names, e.g. ``siteConfig.minTlsVersion``) and its
resource options (``ignoreChanges``, ``dependencies``, ``parent``, ...).

API (fixtures, all function-scoped; config and the root stack are reset after
every test):

``infra`` -> :class:`Harness`
    ``infra.run(program, config=None, *, secret_keys=(), preview=False,
    computed=None, calls=None) -> StackRun``
        Runs ``program`` (a no-argument callable that registers resources;
        if it returns an awaitable, that is awaited too, e.g. a coroutine
        resolving Outputs to check) with ``config`` as the stack's
        configuration and waits until every registration has finished. Keys without a namespace belong to the
        project (``"instanceCount"`` -> ``"mcpscale-azure:instanceCount"``);
        namespaced keys are used as given (``"azure-native:location"``).
        Values are passed as the CLI passes them, as strings: ``3`` -> "3",
        ``True`` -> "true", dicts/lists -> JSON. ``computed(args)`` may return
        extra output properties for a ``MockResourceArgs`` (e.g. a Command's
        ``stdout``, or a ``pulumi:pulumi:StackReference``'s ``outputs``: the
        last deployment's exports, none by default); they are merged over the
        defaults of :func:`default_outputs`. ``calls(args)`` answers invokes
        (a ``MockCallArgs``) with a dict, or None to leave the invoke to the
        defaults: ``azure-native:authorization:getClientConfig`` answers
        :data:`CLIENT_CONFIG`; any other invoke fails the test. Exceptions raised by the program (or in an
        apply) propagate, and the resources registered before the failure are
        still available as ``infra.last``.
    ``infra.run_main(config)`` runs the project's ``__main__.py`` the same way.
    ``infra.stack_config("dev")`` returns the config the CLI would hand the
        program for ``Pulumi.dev.yaml``: the project's ``config:`` defaults
        from ``Pulumi.yaml`` overlaid with the stack file's values.
    ``infra.last`` is the :class:`StackRun` of the latest run (also after a
        failure).

``mocked_stack()`` is the same harness as a context manager, for fixtures of
a wider scope (e.g. a module-scoped one that packages a stack once).

:class:`StackRun`
    ``resources`` (list of :class:`Registration`, in registration order,
    the root stack excluded), ``outputs`` (stack exports resolved to
    :class:`Export` ``(value, secret)``), ``of_type(token)``,
    ``one(token)`` (exactly one, else AssertionError),
    ``children_of(registration)``, ``types()`` (a Counter of type tokens).

:class:`Registration`
    ``type``, ``name``, ``urn``, ``custom``, ``parent`` (urn),
    ``dependencies`` (set of urns: explicit ``depends_on`` and those implied
    by inputs), ``property_dependencies`` (wire name -> set of urns),
    ``ignore_changes``, ``protect``, ``delete_before_replace``,
    ``replace_on_changes``, ``additional_secret_outputs``, ``request`` (the raw
    RegisterResourceRequest for anything else), ``inputs`` (plain values,
    secrets unwrapped), ``raw_inputs`` (secrets still wrapped),
    ``outputs`` (what the mock returned, secrets unwrapped; outputs the
    resource declares secret, like ``RandomPassword.result``, come back as
    secrets as they do from the engine), ``get("a.b.0.c")`` (plain value at a
    dotted wire path), ``is_secret("a.b")`` (True when the value at that path,
    or any container above it, is a Pulumi secret on the wire).

The Pulumi SDK marks a whole object secret when any member is secret, so a
secret app setting would make the enclosing ``siteConfig`` secret on the
wire; ``is_secret("siteConfig")`` is how a test proves it is not.

The mocks give a site the system identity :data:`SITE_PRINCIPAL` and a slot
:data:`SLOT_PRINCIPAL`, a Key Vault its ``properties.vaultUri``, an Azure
Managed Redis cluster its ``hostName``, and run as organization
:data:`ORGANIZATION` (what the self-managed backend reports).

Helper: :func:`unwrap_secrets` (a wire value with every secret marker
replaced by the value it wraps).

Typical use::

    def test_plan_capacity(infra):
        run = infra.run(lambda: Plan("plan", PlanArgs(...)), {"instanceCount": 4})
        assert run.one("azure-native:web:AppServicePlan").get("sku.capacity") == 4

A run of the whole program costs about 0.2 s on this machine; the first run
of a session pays about 2 s more to import ``pulumi_azure_native``.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import inspect
import json
import runpy
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import pulumi
import pytest
import yaml
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.config import set_all_config
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

ROOT = Path(__file__).resolve().parents[2]
PROJECT_FILE = ROOT / "Pulumi.yaml"
MAIN_PROGRAM = ROOT / "__main__.py"
STACK_NAME = "test"
# What `pulumi.get_organization()` answers with the DIY (self-managed) backend.
ORGANIZATION = "organization"
SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
TENANT = "99999999-8888-7777-6666-555555555555"
CLIENT_CONFIG = {
    "subscriptionId": SUBSCRIPTION,
    "tenantId": TENANT,
    "clientId": "77777777-7777-7777-7777-777777777777",
    "objectId": "66666666-6666-6666-6666-666666666666",
}
# Principal ids of the system identities the mock gives a site and a slot.
SITE_PRINCIPAL = "11111111-1111-1111-1111-111111111111"
SLOT_PRINCIPAL = "55555555-5555-5555-5555-555555555555"


@functools.cache  # read for every URN a test computes (tests/infra/engine_urns.py)
def project_name() -> str:
    """The project's name from Pulumi.yaml (config keys are namespaced by it)."""
    if PROJECT_FILE.exists():
        return yaml.safe_load(PROJECT_FILE.read_text())["name"]
    return "mcpscale-azure"


# --------------------------------------------------------------------------
# Secrets on the wire


def _is_wrapped_secret(value: Any) -> bool:
    return rpc.is_rpc_secret(value)


def unwrap_secrets(value: Any) -> Any:
    """``value`` with every secret marker replaced by the value it wraps."""
    if _is_wrapped_secret(value):
        return unwrap_secrets(rpc.unwrap_rpc_secret(value))
    if isinstance(value, dict):
        return {k: unwrap_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(v) for v in value]
    return value


def _split(path: str) -> list[str | int]:
    return [int(p) if p.isdigit() else p for p in path.split(".") if p != ""]


# --------------------------------------------------------------------------
# Records


@dataclass
class Registration:
    """One RegisterResource call as the engine would have received it."""

    type: str
    name: str
    urn: str
    custom: bool
    parent: str
    dependencies: set[str]
    property_dependencies: dict[str, set[str]]
    ignore_changes: list[str]
    protect: bool
    delete_before_replace: bool
    replace_on_changes: list[str]
    additional_secret_outputs: list[str]
    raw_inputs: dict[str, Any]
    request: Any = field(repr=False)
    outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def inputs(self) -> dict[str, Any]:
        return unwrap_secrets(self.raw_inputs)

    def get(self, path: str, default: Any = KeyError) -> Any:
        """Plain value at a dotted wire path, e.g. ``"siteConfig.appSettings.0.name"``."""
        value: Any = self.inputs
        for part in _split(path):
            try:
                value = value[part]
            except (KeyError, IndexError, TypeError):
                if default is KeyError:
                    raise KeyError(f"{self.type} {self.name!r} has no input {path!r}") from None
                return default
        return value

    def is_secret(self, path: str) -> bool:
        """True when the value at ``path`` (or a container above it) is a secret."""
        value: Any = self.raw_inputs
        for part in _split(path):
            if _is_wrapped_secret(value):
                return True
            value = value[part]
        return _is_wrapped_secret(value)


class Export(NamedTuple):
    value: Any
    secret: bool


@dataclass
class StackRun:
    resources: list[Registration]
    outputs: dict[str, Export]

    def of_type(self, type_token: str) -> list[Registration]:
        return [r for r in self.resources if r.type == type_token]

    def one(self, type_token: str) -> Registration:
        found = self.of_type(type_token)
        assert len(found) == 1, f"expected exactly one {type_token}, got {[r.name for r in found]}"
        return found[0]

    def children_of(self, parent: Registration) -> list[Registration]:
        return [r for r in self.resources if r.parent == parent.urn]

    def types(self) -> collections.Counter[str]:
        return collections.Counter(r.type for r in self.resources)


# --------------------------------------------------------------------------
# Mocks

_ARM_TYPES = {
    "azure-native:resources:ResourceGroup": None,
    "azure-native:web:AppServicePlan": "Microsoft.Web/serverfarms",
    "azure-native:web:WebApp": "Microsoft.Web/sites",
    "azure-native:operationalinsights:Workspace": "Microsoft.OperationalInsights/workspaces",
    "azure-native:applicationinsights:Component": "Microsoft.Insights/components",
    "azure-native:applicationinsights:Workbook": "Microsoft.Insights/workbooks",
    "azure-native:monitor:AutoscaleSetting": "Microsoft.Insights/autoscalesettings",
    "azure-native:keyvault:Vault": "Microsoft.KeyVault/vaults",
    "azure-native:monitor:ActionGroup": "Microsoft.Insights/actionGroups",
    "azure-native:monitor:MetricAlert": "Microsoft.Insights/metricAlerts",
}

# Inputs that carry an explicit Azure resource name; otherwise the provider auto-names.
_NAME_INPUTS = ("name", "resourceName", "workspaceName", "autoscaleSettingName", "vaultName", "secretName")


def default_outputs(args: pulumi_mocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
    """Plausible provider outputs: inputs echoed, plus the computed properties we read."""
    inputs = dict(args.inputs)
    outputs = dict(inputs)
    if args.typ == "pulumi:pulumi:StackReference":
        return inputs["name"], {**outputs, "outputs": {}, "secretOutputNames": []}
    if args.typ == "azure-native:resources:ResourceGroup":
        name = inputs.get("resourceGroupName") or f"{args.name}-rg0001"
        outputs["name"] = name
        return f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{name}", outputs
    name = next((inputs[k] for k in _NAME_INPUTS if inputs.get(k)), None)
    name = name or f"{args.name}0001"  # azure-native auto-names with a random suffix
    group = inputs.get("resourceGroupName", "rg")
    arm_type = _ARM_TYPES.get(args.typ, args.typ.replace(":", "/"))
    resource_id = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{group}/providers/{arm_type}/{name}"
    if args.typ == "azure-native:web:WebAppSlot":
        slot = inputs.get("slot") or name
        resource_id = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{group}/providers/Microsoft.Web/sites/{inputs.get('name')}/slots/{slot}"
        outputs["defaultHostName"] = f"{inputs.get('name')}-{slot}.azurewebsites.net"
        outputs["name"] = f"{inputs.get('name')}/{slot}"
        outputs["identity"] = {**inputs.get("identity", {}), "principalId": SLOT_PRINCIPAL}
    else:
        outputs["name"] = name
    if args.typ == "azure-native:web:WebApp":
        outputs["defaultHostName"] = f"{name}.azurewebsites.net"
        outputs["identity"] = {**inputs.get("identity", {}), "principalId": SITE_PRINCIPAL}
    if args.typ == "azure-native:applicationinsights:Component":
        outputs["instrumentationKey"] = "22222222-2222-2222-2222-222222222222"
        outputs["connectionString"] = (
            "InstrumentationKey=22222222-2222-2222-2222-222222222222;"
            "IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/"
        )
        outputs["appId"] = "33333333-3333-3333-3333-333333333333"
    if args.typ == "azure-native:keyvault:Vault":
        outputs["properties"] = {**inputs.get("properties", {}), "vaultUri": f"https://{name}.vault.azure.net/"}
    if args.typ == "azure-native:keyvault:Secret":
        resource_id = (
            f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{group}/providers/Microsoft.KeyVault/vaults/"
            f"{inputs.get('vaultName')}/secrets/{name}"
        )
    if args.typ == "azure-native:redisenterprise:RedisEnterprise":
        outputs["hostName"] = f"{name}.{inputs.get('location')}.redis.azure.net"
    if args.typ == "azure-native:operationalinsights:Workspace":
        outputs["customerId"] = "44444444-4444-4444-4444-444444444444"
    if args.typ.startswith("random:index/random"):
        outputs["result"] = "mock-random-" + args.name
    outputs["id"] = resource_id
    return resource_id, outputs


class RecordingMocks(pulumi_mocks.Mocks):
    def __init__(
        self,
        computed: Callable[[pulumi_mocks.MockResourceArgs], Mapping[str, Any] | None] | None = None,
        calls: Callable[[pulumi_mocks.MockCallArgs], Mapping[str, Any] | None] | None = None,
    ) -> None:
        self.computed = computed
        self.calls = calls
        # Set by the monitor before each registration: the engine returns these
        # outputs as secrets (e.g. RandomPassword.result), so the mocks do too.
        self.secret_outputs: set[str] = set()

    def new_resource(self, args: pulumi_mocks.MockResourceArgs):
        resource_id, outputs = default_outputs(args)
        if self.computed is not None:
            outputs.update(self.computed(args) or {})
        for key in self.secret_outputs & outputs.keys():
            outputs[key] = rpc.wrap_rpc_secret(outputs[key])
        return resource_id, outputs

    def call(self, args: pulumi_mocks.MockCallArgs):
        answer = self.calls(args) if self.calls is not None else None
        if answer is None and args.token == "azure-native:authorization:getClientConfig":
            answer = CLIENT_CONFIG
        if answer is None:
            raise AssertionError(f"unexpected invoke {args.token} under mocks")
        return dict(answer)


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """A MockMonitor that records every registration with its options."""

    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self.registrations: list[Registration] = []

    def RegisterResource(self, request):
        self.mocks.secret_outputs = set(request.additionalSecretOutputs)
        response = super().RegisterResource(request)
        if request.type == "pulumi:pulumi:Stack":
            return response
        pulumi_mocks._ensure_event_loop()
        registration = Registration(
            type=request.type,
            name=request.name,
            urn=response.urn,
            custom=request.custom,
            parent=request.parent,
            dependencies=set(request.dependencies),
            property_dependencies={k: set(v.urns) for k, v in request.propertyDependencies.items()},
            ignore_changes=list(request.ignoreChanges),
            protect=request.protect,
            delete_before_replace=request.deleteBeforeReplace,
            replace_on_changes=list(request.replaceOnChanges),
            additional_secret_outputs=list(request.additionalSecretOutputs),
            raw_inputs=rpc.deserialize_properties(request.object),
            request=request,
        )
        registered = self.resources.get(response.urn)
        if registered is not None:
            registration.outputs = unwrap_secrets(dict(registered.state))
        self.registrations.append(registration)
        return response


# --------------------------------------------------------------------------
# Running programs


def _wire_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value)


def _namespaced(key: str, project: str) -> str:
    return key if ":" in key else f"{project}:{key}"


class Harness:
    def __init__(self) -> None:
        self.project = project_name()
        self.last: StackRun | None = None

    def run(
        self,
        program: Callable[[], Any],
        config: Mapping[str, Any] | None = None,
        *,
        secret_keys: Iterable[str] = (),
        preview: bool = False,
        computed: Callable[[pulumi_mocks.MockResourceArgs], Mapping[str, Any] | None] | None = None,
        calls: Callable[[pulumi_mocks.MockCallArgs], Mapping[str, Any] | None] | None = None,
    ) -> StackRun:
        mocks = RecordingMocks(computed, calls)
        monitor = RecordingMonitor(mocks)
        wire_config = {_namespaced(k, self.project): _wire_value(v) for k, v in (config or {}).items()}
        set_all_config(wire_config, [_namespaced(k, self.project) for k in secret_keys])
        pulumi_settings.ROOT.set(None)
        # An earlier asyncio.run() in the same process (the app tests) leaves no current loop.
        _ensure_event_loop()
        pulumi_mocks.set_mocks(
            mocks, project=self.project, stack=STACK_NAME, preview=preview, monitor=monitor, organization=ORGANIZATION
        )
        stack = pulumi_settings.get_root_resource()
        outputs: dict[str, Export] = {}

        async def body() -> None:
            result = program()
            if inspect.isawaitable(result):
                await result
            for name, value in list(stack.outputs.items()):
                out = pulumi.Output.from_input(value)
                outputs[name] = Export(await out.future(), bool(await out.is_secret()))

        self.last = StackRun(monitor.registrations, outputs)
        _sync_await(run_pulumi_func(body))
        return self.last

    def run_main(self, config: Mapping[str, Any] | None = None, **kwargs: Any) -> StackRun:
        return self.run(lambda: runpy.run_path(str(MAIN_PROGRAM), run_name="__main__"), config, **kwargs)

    def stack_config(self, stack: str) -> dict[str, Any]:
        """Project defaults from Pulumi.yaml overlaid with Pulumi.<stack>.yaml, as the CLI does."""
        project = yaml.safe_load(PROJECT_FILE.read_text())
        config: dict[str, Any] = {}
        for key, spec in (project.get("config") or {}).items():
            if isinstance(spec, dict) and "default" in spec:
                config[_namespaced(key, self.project)] = spec["default"]
            elif not isinstance(spec, dict):
                config[_namespaced(key, self.project)] = spec
        stack_file = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text()) or {}
        for key, value in (stack_file.get("config") or {}).items():
            if isinstance(value, dict) and "secure" in value:
                raise ValueError(f"Pulumi.{stack}.yaml: {key} is encrypted; tests cannot decrypt it")
            config[_namespaced(key, self.project)] = value
        return config


def _reset() -> None:
    set_all_config({}, [])
    pulumi_settings.ROOT.set(None)


@contextlib.contextmanager
def mocked_stack() -> Iterator[Harness]:
    """A :class:`Harness` with config and root stack reset before and after (the ``infra`` fixture, for any scope)."""
    _reset()
    try:
        yield Harness()
    finally:
        _reset()


@pytest.fixture
def infra() -> Iterable[Harness]:
    with mocked_stack() as harness:
        yield harness
