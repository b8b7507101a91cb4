"""The canary release: a share of production traffic on the staging slot, promoted or rolled back by its telemetry.

With ``canaryPercent`` set, each new package goes through one release
command after the staging deploy (``<name>-canary``, a child of
``Delivery``, ``triggers=[site id, package sha256]``, so it runs exactly
when the staging deploy does and an unchanged ``pulumi up`` runs nothing):

1. route ``canaryPercent`` % of the production host name's traffic to the
   slot, with a routing rule (``siteConfig.experiments.rampUpRules``, what
   the portal's "Traffic %" column and ``az webapp traffic-routing`` set);
2. observe: the gate (``components.canary_gate``) compares the slot's error
   rate and p95 duration with production's over the window, from
   Application Insights;
3. promote (routing back to 0, then swap the slot into production) or roll
   back (routing back to 0, the slot left as it is for inspection, the
   command and so ``pulumi up`` failing with both sides' figures).

Why the rule is sent with ``az rest`` (a PATCH of ``sites/<name>/config/web``
carrying only ``experiments``) and not ``az webapp traffic-routing set``:
the body is then exactly :func:`routing_rules`' (checked against the REST
spec's schema in the tests), and its ``actionHostName`` is the slot's own
``defaultHostName`` as Azure reports it, where ``traffic-routing set``
derives it from the site's host name (``<site>-<slot>.<suffix>``), wrong for
a site with a unique default host name. ``az webapp traffic-routing show``
shows the same rule.

Why Pulumi and the rule do not collide: the release command depends on
the site, so no update of the site (whose ``siteConfig`` never names
``experiments``) is sent while the rule is set; Azure does not return
``siteConfig`` on a site GET (the REST spec: "not returned in response to
normal create and read requests"), so a refresh records no drift; and every
exit of the release (promote, roll back, failure, Ctrl-C) sets the rule back
to none, the state every other ``pulumi up`` assumes.

Cookies: App Service pins a client that keeps cookies to the slot it first
landed on for an hour (the ``x-ms-routing-name`` cookie, `Route production
traffic automatically
<https://learn.microsoft.com/azure/app-service/deploy-staging-slots#route-production-traffic-automatically>`_).
MCP clients built on HTTP libraries without a cookie jar (the SDKs' default
clients) are routed afresh on every request, so one session's calls can be
served by both builds (the server is stateless, and both slots read the same
key rings); a client that keeps cookies stays on one build. The split is
therefore uneven by design, and the gate compares rates, never counts, with
a minimum sample on each side.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import pulumi

MAX_PERCENT = 50
MIN_MINUTES = 5
# What the gate's exit status says (components.canary_gate); anything else is a failure of the gate itself.
GATE_PROMOTE, GATE_ROLL_BACK, GATE_NOT_ENOUGH_DATA = 0, 10, 11
# API version of the config PATCH: the one azure-native 3.x uses for Microsoft.Web/sites.
WEB_API_VERSION = "2025-05-01"


@dataclass(frozen=True)
class CanaryPolicy:
    """How a release observes the canary and what it tolerates (the ``canary*`` config keys)."""

    percent: int
    """Share of production traffic the slot gets while it is observed, 1-50."""
    minutes: int = 10
    """How long the canary is observed before it may be promoted, at least 5."""
    max_error_rate_points: float = 1.0
    """Percentage points by which the canary's error rate may exceed production's."""
    max_p95_ratio: float = 1.5
    """How many times production's p95 duration the canary's may be, overall and per tool."""
    min_requests: int = 200
    """Requests each side needs in the window before any verdict."""

    def __post_init__(self) -> None:
        problems: list[str] = []
        check_canary(lambda key, value, allowed: problems.append(f"{key} = {value!r}: {allowed}"), self)
        if problems:
            raise ValueError("invalid CanaryPolicy:\n  - " + "\n  - ".join(problems))


def check_canary(problem: Any, policy: Any) -> None:
    """Report each out-of-range canary value under its config key (shared by stack config and CanaryPolicy)."""
    if not 1 <= policy.percent <= MAX_PERCENT:
        problem(
            "canaryPercent",
            str(policy.percent),
            f"expected a whole number from 1 to {MAX_PERCENT} (0, or no policy: off)",
        )
    if policy.minutes < MIN_MINUTES:
        problem("canaryMinutes", str(policy.minutes), f"expected at least {MIN_MINUTES} (minutes of observation)")
    if not 0 <= policy.max_error_rate_points < 100:
        problem(
            "canaryMaxErrorRatePoints",
            str(policy.max_error_rate_points),
            "expected percentage points from 0 to below 100",
        )
    if not policy.max_p95_ratio >= 1:
        problem("canaryMaxP95Ratio", str(policy.max_p95_ratio), "expected a ratio of at least 1 (e.g. 1.5)")
    if policy.min_requests < 1:
        problem("canaryMinRequests", str(policy.min_requests), "expected a whole number of at least 1")


def routing_rules(slot: str, slot_host_name: str, percent: float) -> dict[str, Any]:
    """The ``config/web`` PATCH body routing ``percent`` % of production traffic to ``slot``; 0: no rule at all."""
    rules = [] if percent == 0 else [{"actionHostName": slot_host_name, "reroutePercentage": percent, "name": slot}]
    return {"properties": {"experiments": {"rampUpRules": rules}}}


def _routing_body_command() -> str:
    # The body comes from routing_rules itself, so the script sends exactly what the tests check.
    return '"$GATE_PYTHON" -c "import json, sys; from components.canary import routing_rules; ' + (
        'print(json.dumps(routing_rules(sys.argv[1], sys.argv[2], float(sys.argv[3]))))"'
    )


def release_script(site_preamble: str) -> str:
    """The release command's script after ``site_preamble`` (components.delivery: the checks of az and the site id
    every delivery command makes, and ``$subscription``, ``$resource_group``, ``$site`` from the site id)."""
    return site_preamble + _RELEASE


_RELEASE = (
    f"GATE_PROMOTE={GATE_PROMOTE} GATE_ROLL_BACK={GATE_ROLL_BACK} GATE_NOT_ENOUGH_DATA={GATE_NOT_ENOUGH_DATA}\n"
    + f"WEB_API_VERSION={WEB_API_VERSION}\n"
    + r"""if [[ -z "${SLOT:-}" ]]; then
  echo "canary: SLOT is empty; a canary needs the staging slot" >&2
  exit 2
fi
slot_host=$(az webapp show --subscription "$subscription" --resource-group "$resource_group" --name "$site" \
  --slot "$SLOT" --query defaultHostName --output tsv)
if [[ -z "$slot_host" ]]; then
  echo "canary: az reported no host name for slot $SLOT of $site" >&2
  exit 2
fi
config_url="https://management.azure.com/subscriptions/$subscription/resourceGroups/$resource_group/providers/Microsoft.Web/sites/$site/config/web?api-version=$WEB_API_VERSION"
route() {
  local body
  body=$(ROUTING_BODY_COMMAND "$SLOT" "$slot_host" "$1")
  az rest --method patch --url "$config_url" --body "$body" --output none
}
routed=0
restore_routing() {
  if [[ "$routed" == 1 ]]; then
    routed=0
    echo "canary: routing every request of $site back to production"
    route 0 || echo "canary: could not clear the routing rule; run: az webapp traffic-routing clear --name $site --resource-group $resource_group" >&2
  fi
}
gate_pid=""
abandon() {
  echo "canary: interrupted; the release is abandoned" >&2
  if [[ -n "$gate_pid" ]]; then kill "$gate_pid" 2>/dev/null || true; fi
  exit 130
}
trap restore_routing EXIT
trap abandon INT TERM
echo "canary: routing $CANARY_PERCENT% of production traffic of $site to slot $SLOT ($slot_host), package $PACKAGE_SHA256"
routed=1
route "$CANARY_PERCENT"
# In the background, so that a signal reaches the trap at once (bash runs traps only between foreground commands).
"$GATE_PYTHON" -m components.canary_gate --app-insights "$APP_INSIGHTS_ID" --slot "$SLOT" \
  --percent "$CANARY_PERCENT" --minutes "$CANARY_MINUTES" --max-error-rate-points "$CANARY_MAX_ERROR_RATE_POINTS" \
  --max-p95-ratio "$CANARY_MAX_P95_RATIO" --min-requests "$CANARY_MIN_REQUESTS" &
gate_pid=$!
gate_status=0
wait "$gate_pid" || gate_status=$?
gate_pid=""
case "$gate_status" in
  "$GATE_PROMOTE")
    restore_routing
    echo "canary: promoting: swapping slot $SLOT into production of $site"
    az webapp deployment slot swap --subscription "$subscription" --resource-group "$resource_group" --name "$site" \
      --slot "$SLOT" --target-slot production --output none
    echo "canary: promoted package $PACKAGE_SHA256; slot $SLOT now holds the previous build"
    ;;
  "$GATE_ROLL_BACK" | "$GATE_NOT_ENOUGH_DATA")
    restore_routing
    echo "canary: rolled back: production keeps its build; slot $SLOT keeps package $PACKAGE_SHA256 for inspection" >&2
    exit 1
    ;;
  *)
    restore_routing
    echo "canary: the gate failed (exit $gate_status); rolled back, production keeps its build" >&2
    exit "$gate_status"
    ;;
esac
""".replace("ROUTING_BODY_COMMAND", _routing_body_command())
)


def release_environment(
    site_id: pulumi.Input[str],
    slot: str,
    app_insights_id: pulumi.Input[str],
    package_sha256: str,
    policy: CanaryPolicy,
) -> dict[str, pulumi.Input[str]]:
    """The release command's environment: where to route and query, the policy, and the interpreter of the gate."""
    return {
        "SITE_ID": site_id,
        "SLOT": slot,
        "APP_INSIGHTS_ID": app_insights_id,
        "PACKAGE_SHA256": package_sha256,
        "CANARY_PERCENT": str(policy.percent),
        "CANARY_MINUTES": str(policy.minutes),
        "CANARY_MAX_ERROR_RATE_POINTS": f"{policy.max_error_rate_points:g}",
        "CANARY_MAX_P95_RATIO": f"{policy.max_p95_ratio:g}",
        "CANARY_MIN_REQUESTS": str(policy.min_requests),
        # The interpreter running this program has the infra group (azure-monitor-query, azure-identity).
        "GATE_PYTHON": sys.executable,
    }
