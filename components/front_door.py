"""Azure Front Door (Standard, or Premium) as the fleet's one public entry in front of every region's site.

One profile, one endpoint, one origin group with one origin per region at
equal priority and weight: every healthy region serves, and Front Door sends
each request to the lowest-latency healthy origins (those within
``additionalLatencyInMilliseconds`` of the fastest). Session affinity is off
because the protocol is stateless and the key rings are shared: any region
can answer any request, a handle minted in one is accepted in all.

Health: every edge probes ``GET /health`` over HTTPS every
:data:`PROBE_INTERVAL_S`; an origin is healthy while at least
:data:`SUCCESSFUL_SAMPLES_REQUIRED` of the last :data:`SAMPLE_SIZE` probes
succeeded, so a dead region is out of rotation after
``SAMPLE_SIZE - SUCCESSFUL_SAMPLES_REQUIRED + 1`` failed probes
(:func:`failover_bound_s`). The interval trades failover time against probe
load: every Front Door edge probes every origin (learn.microsoft.com/azure/
frontdoor/health-probes), so a shorter interval multiplies requests to
``/health`` across dozens of edges; 30 s keeps a regional outage to about a
minute of failed requests with probe traffic far below one instance's
capacity.

Streaming: a tool call that streams (SSE) is pinged every
``app.kernel.KEEPALIVE_S`` and a silent handler commits its stream after that
long, so no gap between bytes from the origin is longer than the keep-alive;
:data:`ORIGIN_RESPONSE_TIMEOUT_S` is a multiple of it, inside Front Door's
allowed 16-240 s (learn.microsoft.com/azure/azure-resource-manager/management/
azure-subscription-service-limits, Front Door Standard and Premium limits).

The route forwards ``/*`` over HTTPS only and caches nothing (no
``cacheConfiguration``: MCP responses are per caller). The WAF policy is
attached through a security policy; on Standard it has custom rules only (a
per-client rate limit on ``/mcp`` and a block of methods MCP does not use),
on Premium also the Microsoft default and bot manager rule sets, which
Standard cannot run. Front Door's access, health probe and WAF logs and its
metrics go to the fleet's Log Analytics workspace.

The origins accept only this profile's traffic: see components/front_door_lock.py.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
from pulumi_azure_native import cdn, frontdoor, monitor

from components.site_config import HEALTH_CHECK_PATH

STANDARD_SKU = "Standard_AzureFrontDoor"
PREMIUM_SKU = "Premium_AzureFrontDoor"

# Bytes must flow from the origin at least every KEEPALIVE_S; eight of those
# cover a slow first byte as well, and stay under App Service's own 230 s.
ORIGIN_RESPONSE_TIMEOUT_S = 120
# Front Door's allowed range for the origin response timeout (limits page above).
ORIGIN_RESPONSE_TIMEOUT_RANGE_S = (16, 240)

PROBE_INTERVAL_S = 30
SAMPLE_SIZE = 4
SUCCESSFUL_SAMPLES_REQUIRED = 3
# Origins whose probe latency is within this of the fastest share the traffic.
ADDITIONAL_LATENCY_MS = 50

# Equal for every region: latency, not preference, picks among healthy origins.
ORIGIN_PRIORITY = 1
ORIGIN_WEIGHT = 1000
# Front Door Standard and Premium: at most 50 origins per origin group (limits page above).
MAX_ORIGINS = 50

MCP_PATH = "/mcp"
# Streamable HTTP: POST carries messages, GET opens a (legacy) stream, DELETE
# ends a (legacy) session, OPTIONS is the browser's CORS preflight. Anything
# else on /mcp is not MCP and never reaches the origins.
MCP_METHODS = ("GET", "POST", "DELETE", "OPTIONS")
# Requests per client address per minute on /mcp before the WAF blocks it for
# the rest of the minute. Grouped by the socket address that reached Front
# Door (SocketAddr), not X-Forwarded-For, which the client could forge.
RATE_LIMIT_PER_MINUTE = 1200

# Premium only: Standard WAF policies cannot run managed rule sets.
MANAGED_RULE_SETS = (("Microsoft_DefaultRuleSet", "2.1"), ("Microsoft_BotManagerRuleSet", "1.0"))

LOG_CATEGORIES = ("FrontDoorAccessLog", "FrontDoorHealthProbeLog", "FrontDoorWebApplicationFirewallLog")
DIAGNOSTIC_SETTING_NAME = "logs-to-workspace"

_REGION = re.compile(r"^[a-z0-9]+$")


def failover_bound_s() -> int:
    """Longest time a dead origin stays in rotation: the probes it takes to fall below the required successes."""
    return PROBE_INTERVAL_S * (SAMPLE_SIZE - SUCCESSFUL_SAMPLES_REQUIRED + 1)


@dataclass(frozen=True)
class FrontDoorOrigin:
    """One region's site as an origin: its region (names the origin) and its default host name."""

    region: str
    host_name: pulumi.Input[str]


@dataclass(frozen=True)
class FrontDoorArgs:
    resource_group_name: pulumi.Input[str]
    # One per region, the first the primary; order does not change routing.
    origins: Sequence[FrontDoorOrigin]
    # Log Analytics workspace resource id for Front Door's logs and metrics.
    workspace_id: pulumi.Input[str]
    tags: Mapping[str, str]
    premium: bool = False
    rate_limit_per_minute: int = RATE_LIMIT_PER_MINUTE

    def __post_init__(self) -> None:
        if not 1 <= len(self.origins) <= MAX_ORIGINS:
            raise ValueError(f"FrontDoorArgs.origins: expected 1 to {MAX_ORIGINS} origins, got {len(self.origins)}")
        regions = [origin.region for origin in self.origins]
        for region in regions:
            if not _REGION.match(region):
                raise ValueError(
                    f"FrontDoorArgs.origins: region {region!r} is not an Azure region name"
                    " (lower-case letters and digits)"
                )
        repeated = sorted({region for region in regions if regions.count(region) > 1})
        if repeated:
            raise ValueError(f"FrontDoorArgs.origins: region {', '.join(repeated)} appears more than once")
        if self.rate_limit_per_minute < 1:
            raise ValueError(
                f"FrontDoorArgs.rate_limit_per_minute: expected at least 1, got {self.rate_limit_per_minute}"
            )

    @property
    def sku(self) -> str:
        return PREMIUM_SKU if self.premium else STANDARD_SKU


def custom_rules(rate_limit_per_minute: int) -> list[frontdoor.CustomRuleArgs]:
    """The WAF custom rules on every SKU: non-MCP methods are blocked on /mcp, then each client is rate limited."""
    on_mcp = frontdoor.MatchConditionArgs(
        match_variable=frontdoor.MatchVariable.REQUEST_URI,
        operator=frontdoor.Operator.CONTAINS,
        match_value=[MCP_PATH],
        transforms=[frontdoor.TransformType.LOWERCASE],
    )
    return [
        frontdoor.CustomRuleArgs(
            name="BlockNonMcpMethods",
            priority=10,
            enabled_state=frontdoor.CustomRuleEnabledState.ENABLED,
            rule_type=frontdoor.RuleType.MATCH_RULE,
            match_conditions=[
                on_mcp,
                frontdoor.MatchConditionArgs(
                    match_variable=frontdoor.MatchVariable.REQUEST_METHOD,
                    operator=frontdoor.Operator.EQUAL,
                    match_value=list(MCP_METHODS),
                    negate_condition=True,
                ),
            ],
            action=frontdoor.ActionType.BLOCK,
        ),
        frontdoor.CustomRuleArgs(
            name="RateLimitPerClient",
            priority=20,
            enabled_state=frontdoor.CustomRuleEnabledState.ENABLED,
            rule_type=frontdoor.RuleType.RATE_LIMIT_RULE,
            rate_limit_duration_in_minutes=1,
            rate_limit_threshold=rate_limit_per_minute,
            group_by=[frontdoor.GroupByVariableArgs(variable_name=frontdoor.VariableName.SOCKET_ADDR)],
            match_conditions=[on_mcp],
            action=frontdoor.ActionType.BLOCK,
        ),
    ]


def managed_rules(premium: bool) -> frontdoor.ManagedRuleSetListArgs | None:
    """The managed rule sets (Premium), each blocking what it detects; None on Standard."""
    if not premium:
        return None
    return frontdoor.ManagedRuleSetListArgs(
        managed_rule_sets=[
            frontdoor.ManagedRuleSetArgs(
                rule_set_type=rule_set,
                rule_set_version=version,
                rule_set_action=frontdoor.ManagedRuleSetActionType.BLOCK,
            )
            for rule_set, version in MANAGED_RULE_SETS
        ]
    )


def waf_policy_name(name: str) -> str:
    """A Front Door WAF policy name (letters and digits, starting with a letter) from the component's name."""
    letters = re.sub(r"[^A-Za-z0-9]", "", name)
    if not letters or not letters[0].isalpha():
        letters = f"waf{letters}"
    return f"{letters}waf"[:128]


class FrontDoor(pulumi.ComponentResource):
    """Profile, endpoint, origin group and origins, route, WAF policy and security policy, diagnostic setting."""

    profile_id: pulumi.Output[str]
    front_door_id: pulumi.Output[str]
    """The profile's ``frontDoorId``: Front Door sends it as ``X-Azure-FDID`` and the origins compare against it."""
    endpoint_host_name: pulumi.Output[str]
    mcp_url: pulumi.Output[str]
    """``https://<endpoint host>/mcp``: the MCP URL clients use."""

    def __init__(self, name: str, args: FrontDoorArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mcpscale:azure:FrontDoor", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = {**args.tags, "component": "front-door"}
        group = args.resource_group_name

        profile = cdn.Profile(
            f"{name}-profile",
            resource_group_name=group,
            location="global",
            sku=cdn.SkuArgs(name=args.sku),
            origin_response_timeout_seconds=ORIGIN_RESPONSE_TIMEOUT_S,
            tags=tags,
            opts=child,
        )
        endpoint = cdn.AFDEndpoint(
            f"{name}-endpoint",
            resource_group_name=group,
            profile_name=profile.name,
            location="global",
            enabled_state=cdn.EnabledState.ENABLED,
            # The same endpoint name gives the same host name again in this tenant after a re-create.
            auto_generated_domain_name_label_scope=cdn.AutoGeneratedDomainNameLabelScope.TENANT_REUSE,
            tags=tags,
            opts=child,
        )
        origin_group = cdn.AFDOriginGroup(
            f"{name}-origins",
            resource_group_name=group,
            profile_name=profile.name,
            health_probe_settings=cdn.HealthProbeParametersArgs(
                probe_path=HEALTH_CHECK_PATH,
                probe_protocol=cdn.ProbeProtocol.HTTPS,
                probe_request_type=cdn.HealthProbeRequestType.GET,
                probe_interval_in_seconds=PROBE_INTERVAL_S,
            ),
            load_balancing_settings=cdn.LoadBalancingSettingsParametersArgs(
                sample_size=SAMPLE_SIZE,
                successful_samples_required=SUCCESSFUL_SAMPLES_REQUIRED,
                additional_latency_in_milliseconds=ADDITIONAL_LATENCY_MS,
            ),
            session_affinity_state=cdn.EnabledState.DISABLED,
            opts=child,
        )
        origins = [
            cdn.AFDOrigin(
                f"{name}-origin-{origin.region}",
                # Named after its region: Front Door's logs name the origin, and the workbook filters them by region.
                origin_name=origin.region,
                resource_group_name=group,
                profile_name=profile.name,
                origin_group_name=origin_group.name,
                host_name=origin.host_name,
                # App Service routes by host name: the site's own, not the Front Door endpoint's.
                origin_host_header=origin.host_name,
                http_port=80,
                https_port=443,
                priority=ORIGIN_PRIORITY,
                weight=ORIGIN_WEIGHT,
                enabled_state=cdn.EnabledState.ENABLED,
                enforce_certificate_name_check=True,
                opts=child,
            )
            for origin in args.origins
        ]
        cdn.Route(
            f"{name}-route",
            resource_group_name=group,
            profile_name=profile.name,
            endpoint_name=endpoint.name,
            origin_group=cdn.ResourceReferenceArgs(id=origin_group.id),
            patterns_to_match=["/*"],
            # Plain HTTP is accepted only to be redirected: nothing is served or forwarded over it.
            supported_protocols=[cdn.AFDEndpointProtocols.HTTP, cdn.AFDEndpointProtocols.HTTPS],
            https_redirect=cdn.HttpsRedirect.ENABLED,
            forwarding_protocol=cdn.ForwardingProtocol.HTTPS_ONLY,
            link_to_default_domain=cdn.LinkToDefaultDomain.ENABLED,
            enabled_state=cdn.EnabledState.ENABLED,
            # A route on an origin group without origins fails to deploy.
            opts=pulumi.ResourceOptions(parent=self, depends_on=origins),
        )
        waf = frontdoor.Policy(
            f"{name}-waf",
            policy_name=waf_policy_name(name),
            resource_group_name=group,
            location="Global",
            sku=frontdoor.SkuArgs(name=args.sku),
            policy_settings=frontdoor.PolicySettingsArgs(
                enabled_state=frontdoor.PolicyEnabledState.ENABLED,
                mode=frontdoor.PolicyMode.PREVENTION,
                # Managed rules read JSON-RPC bodies; custom rules here look only at the URI and method.
                request_body_check=frontdoor.PolicyRequestBodyCheck.ENABLED if args.premium else None,
            ),
            custom_rules=frontdoor.CustomRuleListArgs(rules=custom_rules(args.rate_limit_per_minute)),
            managed_rules=managed_rules(args.premium),
            tags=tags,
            opts=child,
        )
        cdn.SecurityPolicy(
            f"{name}-security",
            resource_group_name=group,
            profile_name=profile.name,
            parameters=cdn.SecurityPolicyWebApplicationFirewallParametersArgs(
                type="WebApplicationFirewall",
                waf_policy=cdn.ResourceReferenceArgs(id=waf.id),
                associations=[
                    cdn.SecurityPolicyWebApplicationFirewallAssociationArgs(
                        domains=[cdn.ActivatedResourceReferenceArgs(id=endpoint.id)], patterns_to_match=["/*"]
                    )
                ],
            ),
            opts=child,
        )
        monitor.DiagnosticSetting(
            f"{name}-logs",
            name=DIAGNOSTIC_SETTING_NAME,
            resource_uri=profile.id,
            workspace_id=args.workspace_id,
            # No logAnalyticsDestinationType: Front Door's categories have no
            # resource-specific tables and land in AzureDiagnostics
            # (learn.microsoft.com/azure/azure-monitor/reference/supported-logs/microsoft-cdn-profiles-logs).
            logs=[monitor.DiagnosticsLogSettingsArgs(category=category, enabled=True) for category in LOG_CATEGORIES],
            metrics=[monitor.DiagnosticsMetricSettingsArgs(category="AllMetrics", enabled=True)],
            opts=child,
        )

        self.profile_id = profile.id
        self.front_door_id = profile.front_door_id
        self.endpoint_host_name = endpoint.host_name
        self.mcp_url = pulumi.Output.concat("https://", endpoint.host_name, MCP_PATH)
        self.register_outputs(
            {
                "profileId": self.profile_id,
                "frontDoorId": self.front_door_id,
                "endpointHostName": self.endpoint_host_name,
                "mcpUrl": self.mcp_url,
            }
        )
