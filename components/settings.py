"""The stack's configuration: every key of the project's config schema, declared once, read and checked once.

Each key is declared on the field of :class:`components.fleet.McpFleetArgs`
it fills, with one of the field makers below (``integer("instanceCount", 3,
1, 10)``): its name, its Pulumi.yaml type and default, and how its text
becomes the field's value. The field's own default is that text parsed, so a
default is written once, in the config's terms, and code that builds
McpFleetArgs gets the same defaults as a stack without config.
:func:`config_keys` lists the declarations, and tests hold Pulumi.yaml's
``config:`` schema and the README's table equal to them.

:func:`read_config` (``McpFleetArgs.from_config()``) reads every declared
key from ``pulumi.Config()``, then builds the arguments, whose
``__post_init__`` runs :func:`check_combinations` once: the combinations the
sku, autoscale or Easy Auth cannot serve are refused for config and code alike. Every
problem, of single values and of combinations, is raised together as one
:class:`ConfigError` (key, value, what is allowed) before the program
registers a single resource. Pulumi passes config values to the program as
strings, whatever Pulumi.yaml declares, so every value is parsed here.

Adding a key: a field with a field maker in McpFleetArgs (:func:`parsed`
for a kind of its own), its entry in Pulumi.yaml and a row in the README's
table (the tests name whichever is missing); a rule between keys goes in
:func:`check_combinations`.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import Field, dataclass, field, fields
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import pulumi
from pulumi.runtime.config import CONFIG, get_config_env, is_config_secret

from app.contract import DEFAULT_SERVER, KEY_RING_FORMAT, KeyRingError, parse_key_ring
from app.ratelimit.spec import RateLimitSpecError, ToolLimits, check_tools, parse_rate_limits, to_json
from components.canary import MAX_PERCENT as CANARY_MAX_PERCENT
from components.canary import MIN_MINUTES as CANARY_MIN_MINUTES
from components.canary import CanaryPolicy, check_canary
from components.regions import MAX_REGIONS, REGIONS, has_zones
from components.server_source import ServerSource, ServerSourceError, resolve_server_source

if TYPE_CHECKING:
    from components.fleet import McpFleetArgs

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
# What text keys may hold, for the field makers optional_text and text_list.
ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")
RESOURCE_GROUP_NAME = re.compile(r"^[-\w._()]{0,89}[-\w_()]$")
EMAIL = re.compile(r"^[^@\s,;]+@[^@\s,;]+\.[^@\s,;]+$")
SHORT_LABEL = re.compile(r"^.{1,128}$")
# Front Door Standard, or Premium (managed WAF rule sets): components/front_door.py.
FRONT_DOOR_SKUS = ("Standard", "Premium")
MIN_HANDLE_SECRET_LENGTH = 32
"""Both rings: the request-state codec needs 32, and a handle ring deployed here gets no less."""

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
    # Empty allowed_applications is meant: not refused where the stack requires them, and not warned about.
    allow_any_client_app: bool = False

    @property
    def issuer(self) -> str:
        return f"https://login.microsoftonline.com/{self.tenant_id}/v2.0"


def workbook_name(project: str, stack: str) -> str:
    """Workbooks must be named by a GUID; derive a stable one from the stack."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"mcpscale://{project}/{stack}/workbook"))


# --------------------------------------------------------------------------
# Declaring keys


@dataclass(frozen=True)
class Key:
    """One key of the project's config schema, as Pulumi.yaml declares it."""

    name: str
    type: str
    """Pulumi.yaml's type: ``integer``, ``boolean`` or ``string``."""
    default: int | bool | str
    """Pulumi.yaml's default: what the key means unset (empty: no value)."""
    secret: bool = False
    """Refused unless set with ``--secret``; unset, the program generates the value."""


class Reading(Protocol):
    """What a :class:`Setting` reads the stack's config through."""

    def raw(self, key: str) -> str | None:
        """The key's value as set, stripped; None when unset."""

    def is_secret(self, key: str) -> bool: ...

    def problem(self, key: str, value: Any, allowed: str) -> None:
        """Report ``value`` of ``key`` as not allowed, saying what is."""

    def report(self, key: str, sentence: str) -> None:
        """Report ``key`` as unusable, the rest of the sentence after its name saying why (``is not set: ...``)."""


UNSET: Any = object()
"""What a :class:`Setting` reads when the field keeps its default: its keys are unset, or a problem was reported."""
HIDDEN: Any = object()
"""A value :meth:`Reading.problem` shows as ``<secret>``."""


@dataclass(frozen=True)
class Setting:
    """How one field of the fleet's arguments is read: the config keys it comes from and the reading."""

    keys: tuple[Key, ...]
    read: Callable[[Reading], Any]
    """The field's value from the keys' text, or UNSET."""


_SETTING = "mcpscale.setting"  # dataclass field metadata


class Refused(ValueError):
    """A key's text that its kind does not allow; the message says what is allowed."""


def _text(default: int | bool | str) -> str:
    """A Pulumi.yaml default as the CLI hands it to the program."""
    return str(default).lower() if isinstance(default, bool) else str(default)


def _field(setting: Setting, default: Any, *, repr: bool = True) -> Any:
    metadata = {_SETTING: setting}
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), repr=repr, metadata=metadata)
    return field(default=default, repr=repr, metadata=metadata)


def parsed(key: Key, parse: Callable[[str], Any], *, repr: bool = True) -> Any:
    """A field read from one key by ``parse`` (text -> value, or :class:`Refused`), defaulting to its default parsed."""

    def read(config: Reading) -> Any:
        raw = config.raw(key.name)
        if raw is None:
            return UNSET
        try:
            return parse(raw)
        except Refused as refused:
            config.problem(key.name, raw, str(refused))
            return UNSET

    return _field(Setting((key,), read), parse(_text(key.default)), repr=repr)


def integer(key: str, default: int, low: int, high: int) -> Any:
    """A whole number from ``low`` to ``high``."""
    allowed = f"expected a whole number from {low} to {high}"

    def parse(text: str) -> int:
        if not _INTEGER.match(text) or not low <= int(text) <= high:
            raise Refused(allowed)
        return int(text)

    return parsed(Key(key, "integer", default), parse)


def _boolean(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise Refused("expected true or false")
    return text.lower() == "true"


def boolean(key: str, default: bool) -> Any:
    """``true`` or ``false``, in any case."""
    return parsed(Key(key, "boolean", default), _boolean)


def choice(key: str, default: str, allowed: Mapping[str, Any] | tuple[str, ...]) -> Any:
    """One of ``allowed``'s names; a mapping gives the value it maps the name to."""

    def parse(text: str) -> Any:
        if text not in allowed:
            raise Refused("expected one of " + ", ".join(allowed))
        return allowed[text] if isinstance(allowed, Mapping) else text

    return parsed(Key(key, "string", default), parse)


def optional_text(key: str, pattern: re.Pattern[str], allowed: str) -> Any:
    """Text matching ``pattern``; empty: None."""

    def parse(text: str) -> str | None:
        if text and not pattern.match(text):
            raise Refused(allowed)
        return text or None

    return parsed(Key(key, "string", ""), parse)


def text_list(key: str, item: re.Pattern[str], allowed: str) -> Any:
    """Comma-separated items, each matching ``item``; empty: none."""

    def parse(text: str) -> tuple[str, ...]:
        items = tuple(i.strip() for i in text.split(",") if i.strip())
        bad = [i for i in items if not item.match(i)]
        if bad:
            raise Refused(f"{allowed}; bad: {', '.join(bad)}")
        return items

    return parsed(Key(key, "string", ""), parse)


def region_list(key: str) -> Any:
    """Comma-separated Azure regions (components/regions.py), none repeated, at most MAX_REGIONS; empty: none."""

    def parse(text: str) -> tuple[str, ...]:
        regions = tuple(r.strip() for r in text.split(",") if r.strip())
        unknown = [r for r in regions if r not in REGIONS]
        if unknown:
            hints = []
            for region in unknown:
                close = difflib.get_close_matches(region.lower(), REGIONS, n=1)
                hints.append(f"{region} (did you mean {close[0]}?)" if close else region)
            raise Refused(
                "expected comma-separated Azure regions offering App Service Linux Premium v3, the first the primary "
                f"({', '.join(REGIONS)}); unknown: {', '.join(hints)}"
            )
        repeated = sorted({r for r in regions if regions.count(r) > 1})
        if repeated:
            raise Refused(f"expected each region once; repeated: {', '.join(repeated)}")
        if len(regions) > MAX_REGIONS:
            raise Refused(f"expected at most {MAX_REGIONS} regions, got {len(regions)}")
        return regions

    return parsed(Key(key, "string", ""), parse)


def roles_by_tool(key: str) -> Any:
    """A JSON object of tool name -> non-empty list of role names (or a config object, which Pulumi hands over as JSON)."""
    allowed = (
        "expected a JSON object of tool name -> non-empty list of Entra app role names, "
        'e.g. {"compute_primes": ["Primes.Run"]}'
    )

    def parse(text: str) -> dict[str, tuple[str, ...]]:
        if not text:
            return {}
        try:
            spec = json.loads(text)
        except ValueError:
            spec = None
        if not isinstance(spec, dict):
            raise Refused(allowed)
        bad = [
            tool
            for tool, roles in spec.items()
            if not isinstance(roles, list) or not roles or not all(isinstance(r, str) and r.strip() for r in roles)
        ]
        if bad:
            raise Refused(f"{allowed}; bad: {', '.join(bad)}")
        return {tool: tuple(role.strip() for role in roles) for tool, roles in spec.items()}

    return parsed(Key(key, "string", ""), parse)


def rate_limits(key: str) -> Any:
    """Rate limits as app.ratelimit.spec reads them (the app's own parser): JSON text or a config object, tool
    name (or ``*``) -> ``{"perCaller": rate, "total": rate}``; empty: none."""

    def parse(text: str) -> dict[str, ToolLimits]:
        if not text:
            return {}
        try:
            return parse_rate_limits(text, source=key)
        except RateLimitSpecError as error:  # names the entry and what is allowed
            raise Refused(str(error)) from None

    return parsed(Key(key, "string", ""), parse)


def key_ring(key: str) -> Any:
    """A secret key ring ``kid:secret[,kid:secret...]`` (app.contract's rules, secrets of 32+ characters), as a
    secret Output; unset: None, and the program generates one."""
    allowed = (
        f"expected a key ring {KEY_RING_FORMAT} with unique key ids (letters, digits, '_', '-'; at most 32) "
        f"and secrets of at least {MIN_HANDLE_SECRET_LENGTH} characters; the first key seals"
    )

    def read(config: Reading) -> pulumi.Output[str] | None:
        raw = config.raw(key)
        if not raw:
            return UNSET
        if not config.is_secret(key):
            config.report(
                key, f"is stored in plain text: set it with `pulumi config set --secret {key} {KEY_RING_FORMAT}`"
            )
            return UNSET
        try:
            parse_key_ring(raw, key, MIN_HANDLE_SECRET_LENGTH)
        except KeyRingError as error:  # names the entry, never a secret
            config.problem(key, HIDDEN, f"{allowed} ({error})")
            return UNSET
        return pulumi.Output.secret(raw)

    return _field(Setting((Key(key, "string", "", secret=True),), read), None, repr=False)


def easy_auth_keys() -> Any:
    """Easy Auth from ``authClientId`` and ``authTenantId`` (both or neither), with ``authScopes``,
    ``authAllowedClientApps`` and ``authAllowAnyClientApp``, which only Easy Auth uses; unset: None, no sign-in."""
    guid = "expected a GUID like 00000000-0000-0000-0000-000000000000"
    keys = (
        *(Key(k, "string", "") for k in ("authClientId", "authTenantId", "authScopes", "authAllowedClientApps")),
        Key("authAllowAnyClientApp", "boolean", False),
    )

    def read(config: Reading) -> EasyAuth | None:
        client_id, tenant_id = (_guid(config, key, guid) for key in ("authClientId", "authTenantId"))
        allow_any = _boolean_key(config, "authAllowAnyClientApp", False)
        scopes_raw, allowed_raw = config.raw("authScopes"), config.raw("authAllowedClientApps")
        if client_id is None and tenant_id is None:
            for key, raw in (("authScopes", scopes_raw), ("authAllowedClientApps", allowed_raw)):
                if raw:
                    config.problem(key, raw, "only used with Easy Auth; set authClientId and authTenantId")
            return UNSET
        if client_id is None or tenant_id is None:
            missing = "authClientId" if client_id is None else "authTenantId"
            if config.raw(missing) is None:  # a malformed value is reported already
                config.report(missing, "is not set: Easy Auth needs both authClientId and authTenantId")
            return UNSET
        scopes = tuple(s.strip() for s in (scopes_raw or "").split(",") if s.strip())
        allowed = tuple(a.strip() for a in (allowed_raw or "").split(",") if a.strip())
        bad = [a for a in allowed if not _GUID.match(a)]
        if bad:
            config.problem(
                "authAllowedClientApps",
                allowed_raw,
                f"expected comma-separated client (application) ids, GUIDs; bad: {', '.join(bad)}",
            )
            return UNSET
        return EasyAuth(client_id, tenant_id, scopes or (f"api://{client_id}/user_impersonation",), allowed, allow_any)

    return _field(Setting(keys, read), None)


def _boolean_key(config: Reading, key: str, default: bool) -> bool:
    """``key`` as a boolean; ``default`` when unset or not a boolean (reported)."""
    raw = config.raw(key)
    if raw is None:
        return default
    try:
        return _boolean(raw)
    except Refused as refused:
        config.problem(key, raw, str(refused))
        return default


def _guid(config: Reading, key: str, allowed: str) -> str | None:
    """``key``'s GUID; None when unset, empty or not a GUID (reported)."""
    raw = config.raw(key)
    if raw and not _GUID.match(raw):
        config.problem(key, raw, allowed)
        return None
    return raw or None


def canary_keys() -> Any:
    """The canary release from ``canaryPercent`` (0: off, None), ``canaryMinutes``, ``canaryMaxErrorRatePoints``,
    ``canaryMaxP95Ratio`` and ``canaryMinRequests``, read together and checked by ``components.canary.check_canary``.

    The two limits are string keys read as numbers: a project's config schema has no decimal type."""
    keys = (
        Key("canaryPercent", "integer", 0),
        Key("canaryMinutes", "integer", 10),
        Key("canaryMaxErrorRatePoints", "string", "1"),
        Key("canaryMaxP95Ratio", "string", "1.5"),
        Key("canaryMinRequests", "integer", 200),
    )

    def whole(config: Reading, key: str, default: int, low: int, high: int) -> int | None:
        raw = config.raw(key)
        if raw is None:
            return default
        if not _INTEGER.match(raw) or not low <= int(raw) <= high:
            config.problem(key, raw, f"expected a whole number from {low} to {high}")
            return None
        return int(raw)

    def number(config: Reading, key: str, default: float) -> float | None:
        raw = config.raw(key)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            config.problem(key, raw, "expected a number")
            return None
        return value

    def read(config: Reading) -> CanaryPolicy | None:
        values = (
            whole(config, "canaryPercent", 0, 0, CANARY_MAX_PERCENT),
            whole(config, "canaryMinutes", 10, CANARY_MIN_MINUTES, 24 * 60),
            number(config, "canaryMaxErrorRatePoints", 1.0),
            number(config, "canaryMaxP95Ratio", 1.5),
            whole(config, "canaryMinRequests", 200, 1, 10**9),
        )
        if values[0] == 0 or None in values:
            return UNSET
        reported: list[str] = []

        def problem(key: str, value: str, allowed: str) -> None:
            reported.append(key)
            config.problem(key, value, allowed)

        policy = _CanaryValues(*values)
        check_canary(problem, policy)
        return UNSET if reported else CanaryPolicy(*values)

    return _field(Setting(keys, read), None)


class _CanaryValues(NamedTuple):
    """The canary keys' values before they are known to make a CanaryPolicy (which refuses bad ones)."""

    percent: int
    minutes: int
    max_error_rate_points: float
    max_p95_ratio: float
    min_requests: int


def server_keys() -> Any:
    """The served ``server`` (``MODULE:ATTR``) and its folder ``serverSource``, checked
    (components.server_source); unset: the bundled demo from the host package."""
    keys = (Key("server", "string", DEFAULT_SERVER), Key("serverSource", "string", ""))

    def read(config: Reading) -> ServerSource:
        server, source = config.raw("server"), config.raw("serverSource")
        if server is None and source is None:
            return UNSET
        try:
            return resolve_server_source(server or DEFAULT_SERVER, source or "")
        except ServerSourceError as error:
            config.problem(error.key, error.value, error.allowed)
            return UNSET

    return _field(Setting(keys, read), ServerSource(DEFAULT_SERVER, None))


def _settings(args_type: type) -> list[tuple[Field[Any], Setting]]:
    return [(f, f.metadata[_SETTING]) for f in fields(args_type) if _SETTING in f.metadata]


def config_keys(args_type: type) -> tuple[Key, ...]:
    """Every config key ``args_type``'s fields declare, in field order."""
    return tuple(key for _, setting in _settings(args_type) for key in setting.keys)


# --------------------------------------------------------------------------
# Combinations


class Problem(NamedTuple):
    """A value not allowed: the config key to change, the value, what is allowed."""

    key: str
    value: str
    allowed: str


class InvalidArgs(ValueError):
    """Arguments whose values do not combine; each problem names the field (and the config key's message)."""

    def __init__(self, args_type: type, problems: list[Problem]) -> None:
        self.problems = problems
        field_of = {key.name: f.name for f, setting in _settings(args_type) for key in setting.keys}
        lines = [f"{field_of.get(p.key, p.key)} = {p.value!r} is not allowed: {p.allowed}" for p in problems]
        super().__init__(f"invalid {args_type.__name__}:\n  - " + "\n  - ".join(lines))


def validate(args: McpFleetArgs) -> None:
    """Raise :class:`InvalidArgs` listing every problem :func:`check_combinations` finds in ``args``."""
    problems = check_combinations(args)
    if problems:
        raise InvalidArgs(type(args), problems)


def check_combinations(args: McpFleetArgs) -> list[Problem]:
    """Every combination of values the sku, autoscale or Easy Auth cannot serve, each under the config key to change."""
    problems: list[Problem] = []
    _check_tier(problems, args)
    if args.zone_redundant:
        _check_zone_redundancy(problems, args.sku, args.instance_count)
        _check_zones_in_regions(problems, args.stamp_regions)
    _check_regions(problems, args)
    if args.autoscale:
        _check_autoscale(
            problems,
            args.instance_count,
            args.autoscale_max_count,
            args.cpu_scale_out_threshold,
            args.cpu_scale_in_threshold,
        )
    if args.swap is not None and not args.staging_slot:
        problems.append(Problem("swap", args.swap, "a swap needs the staging slot; set stagingSlot true or unset swap"))
    if args.tool_roles:
        _check_tool_roles(problems, args)
    _check_rate_limits(problems, args)
    if args.canary is not None and not args.staging_slot:
        problems.append(
            Problem(
                "canaryPercent",
                str(args.canary.percent),
                "a canary runs on the staging slot; set stagingSlot true or canaryPercent 0",
            )
        )
    if args.canary is not None and args.front_door:
        problems.append(
            Problem(
                "canaryPercent",
                str(args.canary.percent),
                "a canary is released in one region; behind Front Door the regions are released one after the "
                "other by swap, so set canaryPercent 0 or frontDoor false",
            )
        )
    if args.require_allowed_client_apps and _open_to_any_client_app(args.easy_auth):
        problems.append(
            Problem(
                "authAllowedClientApps",
                "",
                "empty accepts a token from any client app in the tenant, and this stack sets "
                "requireAllowedClientApps true; list the MCP clients' application (client) ids, "
                "or set authAllowAnyClientApp true to accept any client app in the tenant",
            )
        )
    return problems


def _open_to_any_client_app(auth: EasyAuth | None) -> bool:
    """Easy Auth that accepts a token from any client app in the tenant without saying it means to."""
    return auth is not None and not auth.allowed_applications and not auth.allow_any_client_app


def _check_tier(problems: list[Problem], args: McpFleetArgs) -> None:
    sku, tier = args.sku, args.sku.tier
    if args.instance_count > tier.max_instances:
        problems.append(
            Problem(
                "instanceCount",
                str(args.instance_count),
                f"sku {sku.name} ({tier.name} tier) runs at most {tier.max_instances} instances",
            )
        )
    if args.autoscale and not tier.autoscale:
        problems.append(
            Problem(
                "autoscale",
                "true",
                f"autoscale needs a Standard or Premium sku, and sku {sku.name} is {tier.name}; "
                "choose e.g. S1 or P0v3, or set autoscale false",
            )
        )
    elif args.autoscale and args.autoscale_max_count > tier.max_instances:
        problems.append(
            Problem(
                "autoscaleMaxCount",
                str(args.autoscale_max_count),
                f"sku {sku.name} ({tier.name} tier) scales to at most {tier.max_instances} instances",
            )
        )
    if args.staging_slot and not tier.slots:
        problems.append(
            Problem(
                "stagingSlot",
                "true",
                f"deployment slots need a Standard or Premium sku, and sku {sku.name} is {tier.name}; "
                "choose e.g. S1 or P0v3, or set stagingSlot false",
            )
        )


def _check_zone_redundancy(problems: list[Problem], sku: Sku, instances: int) -> None:
    if not sku.tier.zone_redundancy:
        problems.append(
            Problem(
                "zoneRedundant",
                "true",
                f"zone redundancy needs a Premium v2 or v3 sku, and sku {sku.name} is {sku.tier.name}; "
                "choose e.g. P0v3, or set zoneRedundant false",
            )
        )
    elif instances < MIN_ZONE_REDUNDANT_INSTANCES:
        problems.append(
            Problem(
                "zoneRedundant",
                "true",
                f"zone redundancy needs at least {MIN_ZONE_REDUNDANT_INSTANCES} instances (one per availability "
                f"zone), and instanceCount is {instances}; raise instanceCount or set zoneRedundant false",
            )
        )


def _check_zones_in_regions(problems: list[Problem], regions: tuple[str, ...]) -> None:
    # A location the table does not know (a stack from before it) is left to Azure, as it always was.
    without = [region for region in regions if has_zones(region) is False]
    if without:
        problems.append(
            Problem(
                "zoneRedundant",
                "true",
                f"zone redundancy needs a region with availability zones, and {', '.join(without)} has none "
                "(components/regions.py); choose other regions or set zoneRedundant false",
            )
        )


def _check_regions(problems: list[Problem], args: McpFleetArgs) -> None:
    if args.regions and args.regions[0] != args.location:
        problems.append(
            Problem(
                "regions",
                ",".join(args.regions),
                f"the first region is the primary, which holds what the regions share, and must be "
                f"azure-native:location ({args.location or 'unset'}); list it first",
            )
        )
    if len(args.regions) > 1 and not args.front_door:
        problems.append(
            Problem(
                "frontDoor",
                "false",
                f"{len(args.regions)} regions need Azure Front Door as their one entry; set frontDoor true",
            )
        )
    if args.front_door_sku != "Standard" and not args.front_door:
        problems.append(Problem("frontDoorSku", args.front_door_sku, "only used with Front Door; set frontDoor true"))


def _check_autoscale(problems: list[Problem], instances: int, max_count: int, scale_out: int, scale_in: int) -> None:
    if max_count < instances:
        problems.append(
            Problem(
                "autoscaleMaxCount",
                str(max_count),
                f"expected at least instanceCount ({instances}), the autoscale minimum",
            )
        )
    if scale_in >= scale_out:
        problems.append(
            Problem("cpuScaleInThreshold", str(scale_in), f"expected below cpuScaleOutThreshold ({scale_out})")
        )
        return
    # Scaling in from instances+1 to instances spreads the same load over
    # fewer instances: CPU rises by (n+1)/n. If that lands at or above the
    # scale-out threshold, Azure's flapping guard skips every scale-in and
    # the plan never shrinks back. The smallest n is the worst case.
    projected = scale_in * (instances + 1) / instances
    if projected >= scale_out:
        problems.append(
            Problem(
                "cpuScaleInThreshold",
                str(scale_in),
                f"scaling in from {instances + 1} to {instances} instances at {scale_in}% CPU projects "
                f"{projected:.0f}%, at or above cpuScaleOutThreshold ({scale_out}%), so autoscale would flap; "
                f"expected below {scale_out * instances / (instances + 1):.0f}",
            )
        )


def _check_tool_roles(problems: list[Problem], args: McpFleetArgs) -> None:
    shown = json.dumps({tool: list(roles) for tool, roles in args.tool_roles.items()})
    # The bundled demo's tool names are known here; any other server's are checked by the host at start-up.
    if args.server.spec == DEFAULT_SERVER:
        unknown = sorted(set(args.tool_roles) - set(BUNDLED_SERVER_TOOLS))
        if unknown:
            problems.append(
                Problem(
                    "toolRoles",
                    shown,
                    f"unknown tool(s) {', '.join(unknown)}; the bundled server's tools are "
                    f"{', '.join(BUNDLED_SERVER_TOOLS)}",
                )
            )
            return
    if args.easy_auth is None:
        # Without Easy Auth no request has a caller, and the app serves a role-listed tool to no one.
        problems.append(Problem("toolRoles", shown, "only used with Easy Auth; set authClientId and authTenantId"))


def _check_rate_limits(problems: list[Problem], args: McpFleetArgs) -> None:
    if not all(isinstance(limits, ToolLimits) for limits in args.rate_limits.values()):  # set in code
        problems.append(
            Problem(
                "rateLimits",
                repr(dict(args.rate_limits)),
                "expected app.ratelimit.spec.parse_rate_limits(...)'s result, tool name -> ToolLimits",
            )
        )
        return
    if args.rate_limits_fail_closed and not args.rate_limits:
        problems.append(
            Problem("rateLimitsFailClosed", "true", "only used with rate limits; set rateLimits or unset it")
        )
    # As for toolRoles: the bundled demo's tools are known here, any other server's are checked at start-up.
    if args.rate_limits and args.server.spec == DEFAULT_SERVER:
        try:
            check_tools(args.rate_limits, BUNDLED_SERVER_TOOLS, source="rateLimits")
        except RateLimitSpecError as error:
            problems.append(Problem("rateLimits", to_json(args.rate_limits), str(error)))


# --------------------------------------------------------------------------
# Reading


def read_config(args_type: type[McpFleetArgs], config: pulumi.Config | None = None) -> McpFleetArgs:
    """``args_type`` (McpFleetArgs, or a subclass) from the stack's config, or :class:`ConfigError` listing every
    problem."""
    reader = _Reader(config or pulumi.Config())
    location = pulumi.Config("azure-native").get("location")
    if not location:
        reader.problems.append(
            "azure-native:location is not set: expected an Azure region, "
            "e.g. `pulumi config set azure-native:location westeurope`"
        )
    values = {}
    for f, setting in _settings(args_type):
        value = setting.read(reader)
        if value is not UNSET:
            values[f.name] = value
    reader.check_unknown_keys(tuple(key.name for key in config_keys(args_type)))
    try:
        args = args_type(location=location or "", **values)
    except InvalidArgs as invalid:  # the combinations, checked once, by the arguments themselves
        for problem in invalid.problems:
            reader.problem(*problem)
        raise ConfigError(reader.problems) from None
    if reader.problems:
        raise ConfigError(reader.problems)
    if _open_to_any_client_app(args.easy_auth):  # allowed here (the stack does not require client apps): say so
        pulumi.log.warn(
            f"{reader.config.full_key('authAllowedClientApps')} is empty: /mcp accepts a token from any client "
            f"app in tenant {args.easy_auth.tenant_id}; list the MCP clients' application ids to restrict it"
        )
    return args


class _Reader:
    """The stack's config for :class:`Setting` readings, collecting every problem instead of stopping at the first."""

    def __init__(self, config: pulumi.Config) -> None:
        self.config = config
        self.problems: list[str] = []

    def raw(self, key: str) -> str | None:
        value = self.config.get(key)
        if value is None:
            return None
        return str(value).strip()

    def is_secret(self, key: str) -> bool:
        return is_config_secret(self.config.full_key(key))

    def problem(self, key: str, value: Any, allowed: str) -> None:
        shown = "<secret>" if value is HIDDEN else repr(value)
        self.problems.append(f"{self.config.full_key(key)} = {shown} is not allowed: {allowed}")

    def report(self, key: str, sentence: str) -> None:
        self.problems.append(f"{self.config.full_key(key)} {sentence}")

    def check_unknown_keys(self, known: tuple[str, ...]) -> None:
        # A misspelt key (instanceCont) would otherwise be ignored silently and
        # the stack deployed with the default.
        prefix = self.config.full_key("")
        set_keys = {k for k in (*CONFIG.get(), *get_config_env()) if k.startswith(prefix)}
        for full_key in sorted(set_keys):
            key = full_key[len(prefix) :]
            if key in known:
                continue
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            self.problems.append(f"{full_key} is not a setting of this project: {hint}known keys: {', '.join(known)}")
