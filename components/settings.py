"""The stack's configuration, typed and validated before anything is created.

``StackSettings.load()`` reads every key of the project's ``config:`` schema
(Pulumi.yaml) from ``pulumi.Config()``, checks each one and the combinations
between them, and raises :class:`ConfigError` listing every problem (key,
value, what is allowed) before the program registers a single resource.

Pulumi passes config values to the program as strings, whatever Pulumi.yaml
declares, so every value is parsed here; the defaults below are the same as
the ``default:`` entries in Pulumi.yaml (a test holds them equal).
"""

from __future__ import annotations

import difflib
import json
import math
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import pulumi
from pulumi.runtime.config import CONFIG, get_config_env, is_config_secret

from components.canary import MAX_PERCENT as CANARY_MAX_PERCENT
from components.canary import MIN_MINUTES as CANARY_MIN_MINUTES
from components.canary import CanaryPolicy, check_canary
from components.server_source import BUNDLED_SERVER, ServerSource, ServerSourceError, resolve_server_source

MIN_INSTANCES = 1
MAX_INSTANCES = 10

# Versions App Service for Linux offers (linuxFxVersion PYTHON|x.y) that the
# bundled app supports (pyproject: requires-python >= 3.11).
PYTHON_VERSIONS = ("3.11", "3.12", "3.13", "3.14")


@dataclass(frozen=True)
class Tier:
    """What an App Service pricing tier allows (Azure's published limits)."""

    name: str
    max_instances: int
    slots: bool
    autoscale: bool
    zone_redundancy: bool


BASIC = Tier("Basic", max_instances=3, slots=False, autoscale=False, zone_redundancy=False)
STANDARD = Tier("Standard", max_instances=10, slots=True, autoscale=True, zone_redundancy=False)
PREMIUM_V2 = Tier("PremiumV2", max_instances=30, slots=True, autoscale=True, zone_redundancy=True)
PREMIUM_V3 = Tier("PremiumV3", max_instances=30, slots=True, autoscale=True, zone_redundancy=True)

# A zone-redundant plan spreads its instances over three availability zones.
MIN_ZONE_REDUNDANT_INSTANCES = 3


@dataclass(frozen=True)
class Sku:
    name: str
    tier: Tier
    cores: int
    # ``sku.tier`` as Azure reports it on the plan. It differs from the tier's
    # name for P0v3 and the memory-optimised P*mv3; sending anything else
    # would show as a diff on every `pulumi up` after a `pulumi refresh`.
    reported_tier: str = ""

    @property
    def azure_tier(self) -> str:
        return self.reported_tier or self.tier.name


# Linux plans that can run the app with alwaysOn (Free and Shared cannot).
SKUS: Mapping[str, Sku] = {
    sku.name: sku
    for sku in (
        Sku("B1", BASIC, 1),
        Sku("B2", BASIC, 2),
        Sku("B3", BASIC, 4),
        Sku("S1", STANDARD, 1),
        Sku("S2", STANDARD, 2),
        Sku("S3", STANDARD, 4),
        Sku("P1v2", PREMIUM_V2, 1),
        Sku("P2v2", PREMIUM_V2, 2),
        Sku("P3v2", PREMIUM_V2, 4),
        Sku("P0v3", PREMIUM_V3, 1, "Premium0V3"),
        Sku("P1v3", PREMIUM_V3, 2),
        Sku("P2v3", PREMIUM_V3, 4),
        Sku("P3v3", PREMIUM_V3, 8),
        Sku("P1mv3", PREMIUM_V3, 2, "PremiumMV3"),
        Sku("P2mv3", PREMIUM_V3, 4, "PremiumMV3"),
        Sku("P3mv3", PREMIUM_V3, 8, "PremiumMV3"),
        Sku("P4mv3", PREMIUM_V3, 16, "PremiumMV3"),
        Sku("P5mv3", PREMIUM_V3, 32, "PremiumMV3"),
    )
}

_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_INTEGER = re.compile(r"^[+-]?[0-9]+$")
_KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")  # as app.handles.KEY_ID_PATTERN
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")
_RESOURCE_GROUP = re.compile(r"^[-\w._()]{0,89}[-\w_()]$")
_EMAIL = re.compile(r"^[^@\s,;]+@[^@\s,;]+\.[^@\s,;]+$")
MIN_HANDLE_SECRET_LENGTH = 32

# Every key of the project's config schema (Pulumi.yaml), in the order read.
KEYS = (
    "instanceCount",
    "sku",
    "pythonVersion",
    "autoscale",
    "autoscaleMaxCount",
    "cpuScaleOutThreshold",
    "cpuScaleInThreshold",
    "stagingSlot",
    "swap",
    "zoneRedundant",
    "resourceGroupName",
    "allowedOrigins",
    "authClientId",
    "authTenantId",
    "authScopes",
    "authAllowedClientApps",
    "requireAllowedClientApps",
    "authAllowAnyClientApp",
    "alertEmails",
    "keyVaultPurgeProtection",
    "handleKeys",
    "requestStateKeys",
    "toolRoles",
    "server",
    "serverSource",
    "canaryPercent",
    "canaryMinutes",
    "canaryMaxErrorRatePoints",
    "canaryMaxP95Ratio",
    "canaryMinRequests",
)

# The bundled demo server's tools (app/demo/server.py; a test holds them equal), which toolRoles may name.
BUNDLED_SERVER_TOOLS = ("whoami", "echo", "lookup_fact", "compute_primes", "tally", "pick_fact")


class ConfigError(pulumi.RunError):
    """One or more config values are invalid. Raised before any resource registers."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid stack configuration:\n  - " + "\n  - ".join(problems))


@dataclass(frozen=True)
class EasyAuth:
    """App Service Authentication with Microsoft Entra ID in front of the MCP endpoint."""

    client_id: str
    tenant_id: str
    # Published as protected-resource metadata (RFC 9728) for MCP clients.
    scopes: tuple[str, ...]
    # Client (application) ids whose tokens are accepted; empty: any client in the tenant.
    allowed_applications: tuple[str, ...] = ()

    @property
    def issuer(self) -> str:
        return f"https://login.microsoftonline.com/{self.tenant_id}/v2.0"


@dataclass(frozen=True)
class StackSettings:
    """Everything the components need to know about this stack, validated."""

    project: str
    stack: str
    location: str
    resource_group_name: str | None
    instance_count: int
    sku: Sku
    python_version: str
    autoscale: bool
    autoscale_max_count: int
    cpu_scale_out_threshold: int
    cpu_scale_in_threshold: int
    staging_slot: bool
    swap: str | None
    zone_redundant: bool
    handle_keys: pulumi.Output[str] | None = field(repr=False)
    request_state_keys: pulumi.Output[str] | None = field(repr=False)
    key_vault_purge_protection: bool
    easy_auth: EasyAuth | None
    allowed_origins: tuple[str, ...]
    alert_emails: tuple[str, ...]
    server: ServerSource
    # Tool name -> Entra app roles, any of which may call it (MCP_TOOL_ROLES); empty: every tool open.
    tool_roles: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # The canary release of each new package (canaryPercent > 0); None: a new package waits in staging for `swap`.
    canary: CanaryPolicy | None = None

    @property
    def tags(self) -> dict[str, str]:
        """Tags every resource carries; components add ``component``."""
        return {"project": self.project, "stack": self.stack}

    @property
    def workers_per_instance(self) -> int:
        """Uvicorn workers per instance: one per core of the plan's SKU."""
        return self.sku.cores

    @classmethod
    def load(cls, config: pulumi.Config | None = None) -> StackSettings:
        return _Reader(config or pulumi.Config()).read()


def workbook_name(project: str, stack: str) -> str:
    """Workbooks must be named by a GUID; derive a stable one from the stack."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"mcpscale://{project}/{stack}/workbook"))


# Reports one problem: the config key, its value as given, what is allowed.
Problem = Callable[[str, str, str], None]


class Combination(Protocol):
    """The values :func:`check_combinations` reads, by the names StackSettings and McpFleetArgs both give them."""

    sku: Sku
    instance_count: int
    autoscale: bool
    autoscale_max_count: int
    cpu_scale_out_threshold: int
    cpu_scale_in_threshold: int
    staging_slot: bool
    swap: str | None
    zone_redundant: bool
    canary: CanaryPolicy | None


def check_combinations(problem: Problem, values: Combination) -> None:
    """Report every combination of values the sku or autoscale cannot serve, each under the config key to change.

    Shared by stack config (:meth:`StackSettings.load`) and by programs that
    set the values in code (``components.fleet.McpFleetArgs``), so both refuse the same things.
    """
    _check_tier(
        problem, values.sku, values.instance_count, values.autoscale, values.autoscale_max_count, values.staging_slot
    )
    if values.zone_redundant:
        _check_zone_redundancy(problem, values.sku, values.instance_count)
    if values.autoscale:
        _check_autoscale(
            problem,
            values.instance_count,
            values.autoscale_max_count,
            values.cpu_scale_out_threshold,
            values.cpu_scale_in_threshold,
        )
    if values.swap is not None and not values.staging_slot:
        problem("swap", values.swap, "a swap needs the staging slot; set stagingSlot true or unset swap")
    if values.canary is not None and not values.staging_slot:
        problem(
            "canaryPercent",
            str(values.canary.percent),
            "a canary runs on the staging slot; set stagingSlot true or canaryPercent 0",
        )


def _check_tier(problem: Problem, sku: Sku, instances: int, autoscale: bool, max_count: int, slot: bool) -> None:
    tier = sku.tier
    if instances > tier.max_instances:
        problem(
            "instanceCount",
            str(instances),
            f"sku {sku.name} ({tier.name} tier) runs at most {tier.max_instances} instances",
        )
    if autoscale and not tier.autoscale:
        problem(
            "autoscale",
            "true",
            f"autoscale needs a Standard or Premium sku, and sku {sku.name} is {tier.name}; "
            "choose e.g. S1 or P0v3, or set autoscale false",
        )
    elif autoscale and max_count > tier.max_instances:
        problem(
            "autoscaleMaxCount",
            str(max_count),
            f"sku {sku.name} ({tier.name} tier) scales to at most {tier.max_instances} instances",
        )
    if slot and not tier.slots:
        problem(
            "stagingSlot",
            "true",
            f"deployment slots need a Standard or Premium sku, and sku {sku.name} is {tier.name}; "
            "choose e.g. S1 or P0v3, or set stagingSlot false",
        )


def _check_zone_redundancy(problem: Problem, sku: Sku, instances: int) -> None:
    if not sku.tier.zone_redundancy:
        problem(
            "zoneRedundant",
            "true",
            f"zone redundancy needs a Premium v2 or v3 sku, and sku {sku.name} is {sku.tier.name}; "
            "choose e.g. P0v3, or set zoneRedundant false",
        )
    elif instances < MIN_ZONE_REDUNDANT_INSTANCES:
        problem(
            "zoneRedundant",
            "true",
            f"zone redundancy needs at least {MIN_ZONE_REDUNDANT_INSTANCES} instances (one per availability "
            f"zone), and instanceCount is {instances}; raise instanceCount or set zoneRedundant false",
        )


def _check_autoscale(problem: Problem, instances: int, max_count: int, scale_out: int, scale_in: int) -> None:
    if max_count < instances:
        problem(
            "autoscaleMaxCount",
            str(max_count),
            f"expected at least instanceCount ({instances}), the autoscale minimum",
        )
    if scale_in >= scale_out:
        problem(
            "cpuScaleInThreshold",
            str(scale_in),
            f"expected below cpuScaleOutThreshold ({scale_out})",
        )
        return
    # Scaling in from instances+1 to instances spreads the same load over
    # fewer instances: CPU rises by (n+1)/n. If that lands at or above the
    # scale-out threshold, Azure's flapping guard skips every scale-in and
    # the plan never shrinks back. The smallest n is the worst case.
    projected = scale_in * (instances + 1) / instances
    if projected >= scale_out:
        problem(
            "cpuScaleInThreshold",
            str(scale_in),
            f"scaling in from {instances + 1} to {instances} instances at {scale_in}% CPU projects "
            f"{projected:.0f}%, at or above cpuScaleOutThreshold ({scale_out}%), so autoscale would flap; "
            f"expected below {scale_out * instances / (instances + 1):.0f}",
        )


class _Reader:
    """Parses keys one by one, collecting every problem instead of stopping at the first."""

    def __init__(self, config: pulumi.Config) -> None:
        self.config = config
        self.problems: list[str] = []

    def _raw(self, key: str) -> str | None:
        value = self.config.get(key)
        if value is None:
            return None
        return str(value).strip()

    def _problem(self, key: str, value: Any, allowed: str) -> None:
        shown = "<secret>" if value is _HIDDEN else repr(value)
        self.problems.append(f"{self.config.full_key(key)} = {shown} is not allowed: {allowed}")

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        raw = self._raw(key)
        if raw is None:
            return default
        if not _INTEGER.match(raw):
            self._problem(key, raw, f"expected a whole number from {low} to {high}")
            return default
        value = int(raw)
        if not low <= value <= high:
            self._problem(key, raw, f"expected a whole number from {low} to {high}")
            return default
        return value

    def boolean(self, key: str, default: bool) -> bool:
        raw = self._raw(key)
        if raw is None:
            return default
        if raw.lower() not in ("true", "false"):
            self._problem(key, raw, "expected true or false")
            return default
        return raw.lower() == "true"

    def choice(self, key: str, default: str, allowed: tuple[str, ...]) -> str:
        raw = self._raw(key)
        if raw is None:
            return default
        if raw not in allowed:
            self._problem(key, raw, "expected one of " + ", ".join(allowed))
            return default
        return raw

    def text(self, key: str, check: Callable[[str], bool], allowed: str) -> str | None:
        raw = self._raw(key)
        if raw is None or raw == "":
            return None
        if not check(raw):
            self._problem(key, raw, allowed)
            return None
        return raw

    def read(self) -> StackSettings:
        location = pulumi.Config("azure-native").get("location")
        if not location:
            self.problems.append(
                "azure-native:location is not set: expected an Azure region, "
                "e.g. `pulumi config set azure-native:location westeurope`"
            )

        instance_count = self.integer("instanceCount", 3, MIN_INSTANCES, MAX_INSTANCES)
        sku = SKUS[self.choice("sku", "P0v3", tuple(SKUS))]
        python_version = self.choice("pythonVersion", "3.12", PYTHON_VERSIONS)
        autoscale = self.boolean("autoscale", True)
        autoscale_max_count = self.integer("autoscaleMaxCount", 10, MIN_INSTANCES, PREMIUM_V3.max_instances)
        scale_out = self.integer("cpuScaleOutThreshold", 70, 2, 99)
        scale_in = self.integer("cpuScaleInThreshold", 30, 1, 98)
        staging_slot = self.boolean("stagingSlot", True)
        swap = self.text("swap", lambda v: len(v) <= 128, "expected a short label (at most 128 characters)")
        zone_redundant = self.boolean("zoneRedundant", False)
        resource_group_name = self.text(
            "resourceGroupName",
            lambda v: bool(_RESOURCE_GROUP.match(v)),
            "expected an existing resource group's name (1-90 letters, digits, '-', '_', '.', '(', ')'; "
            "not ending in '.'), or unset to create one",
        )
        allowed_origins = self._origins()
        easy_auth = self._easy_auth()
        self._check_any_client_app(easy_auth)
        alert_emails = self._alert_emails()
        purge_protection = self.boolean("keyVaultPurgeProtection", True)
        handle_keys = self._key_ring("handleKeys")
        request_state_keys = self._key_ring("requestStateKeys")
        server = self._server()
        # The bundled demo's tool names are known here; any other server's are checked by the host at start-up.
        known_tools = BUNDLED_SERVER_TOOLS if server is None or server.spec == BUNDLED_SERVER else None
        tool_roles = self._tool_roles(known_tools, easy_auth is not None)
        canary = self._canary()

        self._check_unknown_keys()
        settings = StackSettings(
            project=pulumi.get_project(),
            stack=pulumi.get_stack(),
            location=location,
            resource_group_name=resource_group_name,
            instance_count=instance_count,
            sku=sku,
            python_version=python_version,
            autoscale=autoscale,
            autoscale_max_count=autoscale_max_count,
            cpu_scale_out_threshold=scale_out,
            cpu_scale_in_threshold=scale_in,
            staging_slot=staging_slot,
            swap=swap,
            zone_redundant=zone_redundant,
            handle_keys=handle_keys,
            request_state_keys=request_state_keys,
            key_vault_purge_protection=purge_protection,
            easy_auth=easy_auth,
            allowed_origins=allowed_origins,
            alert_emails=alert_emails,
            server=server,
            tool_roles=tool_roles,
            canary=canary,
        )
        check_combinations(self._problem, settings)
        if self.problems:
            raise ConfigError(self.problems)
        return settings

    def number(self, key: str, default: float) -> float:
        raw = self._raw(key)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            self._problem(key, raw, "expected a number")
            return default
        return value

    def _canary(self) -> CanaryPolicy | None:
        """The canary* keys, read together: None when canaryPercent is 0, each range checked by check_canary."""
        percent = self.integer("canaryPercent", 0, 0, CANARY_MAX_PERCENT)
        minutes = self.integer("canaryMinutes", 10, CANARY_MIN_MINUTES, 24 * 60)
        points = self.number("canaryMaxErrorRatePoints", 1.0)
        ratio = self.number("canaryMaxP95Ratio", 1.5)
        min_requests = self.integer("canaryMinRequests", 200, 1, 10**9)
        if percent == 0:
            return None
        values = _CanaryValues(percent, minutes, points, ratio, min_requests)
        found: list[str] = []

        def problem(key: str, value: str, allowed: str) -> None:
            found.append(key)
            self._problem(key, value, allowed)

        check_canary(problem, values)
        if found:
            return None
        return CanaryPolicy(percent, minutes, points, ratio, min_requests)

    def _check_unknown_keys(self) -> None:
        # A misspelt key (instanceCont) would otherwise be ignored silently and
        # the stack deployed with the default.
        prefix = self.config.full_key("")
        set_keys = {k for k in (*CONFIG.get(), *get_config_env()) if k.startswith(prefix)}
        for full_key in sorted(set_keys):
            key = full_key[len(prefix) :]
            if key in KEYS:
                continue
            close = difflib.get_close_matches(key, KEYS, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            self.problems.append(f"{full_key} is not a setting of this project: {hint}known keys: {', '.join(KEYS)}")

    def _origins(self) -> tuple[str, ...]:
        return self._list(
            "allowedOrigins",
            _ORIGIN,
            "expected comma-separated origins like https://app.example.com (scheme://host[:port], no path)",
        )

    def _easy_auth(self) -> EasyAuth | None:
        guid = "expected a GUID like 00000000-0000-0000-0000-000000000000"
        client_id = self.text("authClientId", lambda v: bool(_GUID.match(v)), guid)
        tenant_id = self.text("authTenantId", lambda v: bool(_GUID.match(v)), guid)
        scopes_raw = self._raw("authScopes")
        allowed_raw = self._raw("authAllowedClientApps")
        if client_id is None and tenant_id is None:
            for key, raw in (("authScopes", scopes_raw), ("authAllowedClientApps", allowed_raw)):
                if raw:
                    self._problem(key, raw, "only used with Easy Auth; set authClientId and authTenantId")
            return None
        if client_id is None or tenant_id is None:
            missing = "authClientId" if client_id is None else "authTenantId"
            if self._raw(missing) is None:  # a malformed value is reported already
                self.problems.append(
                    f"{self.config.full_key(missing)} is not set: Easy Auth needs both authClientId and authTenantId"
                )
            return None
        scopes = tuple(s.strip() for s in (scopes_raw or "").split(",") if s.strip())
        allowed = self._list("authAllowedClientApps", _GUID, "expected comma-separated client (application) ids, GUIDs")
        return EasyAuth(client_id, tenant_id, scopes or (f"api://{client_id}/user_impersonation",), allowed)

    def _check_any_client_app(self, easy_auth: EasyAuth | None) -> None:
        """Easy Auth without authAllowedClientApps accepts a token from any client app in the tenant.

        Refused where requireAllowedClientApps is true (Pulumi.prod.yaml sets it), unless
        authAllowAnyClientApp says that is meant; elsewhere allowed with a warning.
        """
        required = self.boolean("requireAllowedClientApps", False)
        allow_any = self.boolean("authAllowAnyClientApp", False)
        if easy_auth is None or easy_auth.allowed_applications or allow_any:
            return
        if required:
            self._problem(
                "authAllowedClientApps",
                "",
                "empty accepts a token from any client app in the tenant, and this stack sets "
                "requireAllowedClientApps true; list the MCP clients' application (client) ids, "
                "or set authAllowAnyClientApp true to accept any client app in the tenant",
            )
        else:
            pulumi.log.warn(
                f"{self.config.full_key('authAllowedClientApps')} is empty: /mcp accepts a token from any client "
                f"app in tenant {easy_auth.tenant_id}; list the MCP clients' application ids to restrict it"
            )

    def _list(self, key: str, item: re.Pattern[str], allowed: str) -> tuple[str, ...]:
        raw = self._raw(key)
        if not raw:
            return ()
        items = tuple(i.strip() for i in raw.split(",") if i.strip())
        bad = [i for i in items if not item.match(i)]
        if bad:
            self._problem(key, raw, f"{allowed}; bad: {', '.join(bad)}")
            return ()
        return items

    def _alert_emails(self) -> tuple[str, ...]:
        return self._list("alertEmails", _EMAIL, "expected comma-separated e-mail addresses like ops@example.com")

    def _tool_roles(self, tools: tuple[str, ...] | None, easy_auth: bool) -> dict[str, tuple[str, ...]]:
        """``toolRoles`` (a JSON object, or an object Pulumi hands over as JSON) naming ``tools`` only (None: any)."""
        raw = self._raw("toolRoles")
        if not raw:
            return {}
        allowed = (
            "expected a JSON object of tool name -> non-empty list of Entra app role names, "
            'e.g. {"compute_primes": ["Primes.Run"]}'
        )
        try:
            spec = json.loads(raw)
        except ValueError:
            spec = None
        if not isinstance(spec, dict):
            self._problem("toolRoles", raw, allowed)
            return {}
        bad = [
            tool
            for tool, roles in spec.items()
            if not isinstance(roles, list) or not roles or not all(isinstance(r, str) and r.strip() for r in roles)
        ]
        if bad:
            self._problem("toolRoles", raw, f"{allowed}; bad: {', '.join(bad)}")
            return {}
        unknown = sorted(set(spec) - set(tools)) if tools is not None else []
        if unknown:
            self._problem(
                "toolRoles",
                raw,
                f"unknown tool(s) {', '.join(unknown)}; the bundled server's tools are {', '.join(tools)}",
            )
            return {}
        if not easy_auth:
            # Without Easy Auth no request has a caller, and the app serves a role-listed tool to no one.
            self._problem("toolRoles", raw, "only used with Easy Auth; set authClientId and authTenantId")
            return {}
        return {tool: tuple(role.strip() for role in roles) for tool, roles in spec.items()}

    def _key_ring(self, key: str) -> pulumi.Output[str] | None:
        raw = self._raw(key)
        if not raw:
            return None
        if not is_config_secret(self.config.full_key(key)):
            self.problems.append(
                f"{self.config.full_key(key)} is stored in plain text: set it with "
                f"`pulumi config set --secret {key} kid:secret[,kid:secret...]`"
            )
            return None
        ring = [entry.strip() for entry in raw.split(",")]
        kids = [entry.partition(":")[0] for entry in ring]
        well_formed = all(
            ":" in entry
            and _KEY_ID.match(entry.partition(":")[0])
            and len(entry.partition(":")[2]) >= MIN_HANDLE_SECRET_LENGTH
            for entry in ring
        )
        if not well_formed or len(set(kids)) != len(kids):
            self._problem(
                key,
                _HIDDEN,
                "expected a key ring kid:secret[,kid:secret...] with unique key ids "
                f"(letters, digits, '_', '-'; at most 32) and secrets of at least "
                f"{MIN_HANDLE_SECRET_LENGTH} characters; the first key seals",
            )
            return None
        return pulumi.Output.secret(",".join(ring))

    def _server(self) -> ServerSource | None:
        try:
            return resolve_server_source(self._raw("server") or BUNDLED_SERVER, self._raw("serverSource") or "")
        except ServerSourceError as error:
            self._problem(error.key, error.value, error.allowed)
            return None


_HIDDEN = object()


@dataclass(frozen=True)
class _CanaryValues:
    """The canary keys as read, before CanaryPolicy accepts them (check_canary reports each bad one by key)."""

    percent: int
    minutes: int
    max_error_rate_points: float
    max_p95_ratio: float
    min_requests: int
