"""Code delivery: zip deploy of the app package with `az`, and slot swaps driven by config.

Why commands and not WEBSITE_RUN_FROM_PACKAGE: App Service does not build
run-from-package Python apps, and code referenced from an app setting would
travel with a swap and show as drift. Zip deploy keeps code out of the site's
properties, so Pulumi state stays true after a swap.

The resources, all ``pulumi_command.local.Command``, children of ``Delivery``:

``<name>-staging-deploy`` (staging slot on)
    Zip deploy to the staging slot; ``triggers=[site id, package sha256]``.
``<name>-production-deploy``
    Zip deploy to production. With the staging slot on, ``triggers=[site
    id]``: it runs once per site (a replaced site has a new id) and
    production afterwards gets new code only by a swap. With the slot off,
    ``triggers=[site id, package sha256]`` like the staging deploy. (Turning
    the slot on or off changes these triggers, so it deploys once more then.)
``<name>-swap-baseline`` (only when ``swap`` is set)
    Asks production's ``/health`` which build it serves (the package's build
    id, components/package.py) and outputs it; ``triggers=[swap]``, ordered
    after both deploys.
``<name>-canary`` (only when a canary policy is given)
    The canary release of components/canary.py: a share of production
    traffic to the staging slot, then a swap or a roll-back by the slot's
    telemetry; ``triggers=[site id, package sha256]`` like the staging
    deploy, and ordered after both deploys; the swap waits for it.
``<name>-swap`` (only when ``swap`` is set)
    ``az webapp deployment slot swap`` staging -> production, unless
    production no longer serves the baseline build: then this swap value
    already swapped (the command failed after Azure switched the routing, and
    ``pulumi up`` runs it again) and swapping again would put the old build
    back into production, so it does nothing. ``triggers=[swap]``, so it runs
    when the value is first set and each time it changes; ordered after the
    baseline. A new value swaps again, which rolls back.

Only a change of ``triggers`` may run a script again. pulumi-command runs
``create`` again on *any* input change of a command without ``update``, so an
edit to a script, its interpreter or its environment would redeploy
production straight from the working tree, or swap production back. Every
command therefore has a no-op ``update``, and ``replace_on_changes`` on its
triggers makes a trigger change a replacement (a new command: ``create``
runs). pulumi-command's own SDK adds the same option today while its docs
say a trigger change runs ``update``; stating it here keeps the behaviour
whichever of the two the next release follows.

Before any code is deployed, every deploy command refreshes the Key Vault
references of production and the staging slot and waits (a bounded time)
until each one is resolved, printing one line per setting; otherwise it
fails, naming each unresolved setting with Azure's status and details, and
deploys nothing. An unresolved reference would reach the app as the literal
``@Microsoft.KeyVault(...)`` string, and App Service would not try again
before its next 24-hour refetch (components/secrets.py).

Each command runs a fixed bash script (``set -euo pipefail``) whose inputs come
from its environment; it stops with a message naming the bad value when the
site id is malformed, ``az`` is missing or older than :data:`MIN_AZ_VERSION`,
the package is missing or its hash is not the one that triggered the deploy,
and az's own error is left on stderr, which Pulumi shows when the command
fails.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
from pulumi_command import local

from components.canary import CanaryPolicy, release_environment, release_script
from components.package import AppPackage
from components.site_config import PRODUCTION_SLOT

INTERPRETER = ["/bin/bash", "-c"]
# Basic-auth publishing is off (components/site_config.py), so `az webapp
# deploy` must authenticate to the deployment endpoint with an Entra ID
# token, which az does from this version on.
MIN_AZ_VERSION = "2.48.1"
# The references' refresh is not in the REST specs; Learn documents it at this version
# (learn.microsoft.com/azure/app-service/app-service-key-vault-references, "Understand rotation").
REFERENCES_REFRESH_API_VERSION = "2022-03-01"
# GET .../config/configreferences/appsettings (WebApps_GetAppSettingsKeyVaultReferences), the Microsoft.Web
# version azure-native uses.
REFERENCES_API_VERSION = "2025-05-01"
# Role assignments can take up to 10 minutes to take effect (learn.microsoft.com/azure/role-based-access-control/
# troubleshooting, "Role assignment changes are not being detected"), so a fresh site's references may fail at first.
REFERENCE_TIMEOUT_SECONDS = 600
REFERENCE_POLL_SECONDS = 15
# How often a swap asks production's /health again (3 s apart) when it does not answer: an idle instance may be
# starting.
PROBE_RETRIES = 5
# What a command runs when an input other than its triggers changes.
NO_OP_UPDATE = 'echo "delivery: only inputs other than the triggers changed; nothing deployed or swapped"'
# Replacement (so `create`) on a trigger change, and on nothing else.
REPLACE_ON = ["triggers[*]"]

# Resolves the subscription, resource group and site name from the site's
# resource id, so the commands act on exactly the site Pulumi manages (not on
# whatever subscription `az account set` last chose).
_SITE_PREAMBLE = (
    f"MIN_AZ_VERSION={MIN_AZ_VERSION}\n"
    + r"""set -euo pipefail
shopt -s nocasematch
site_id_pattern='^/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/Microsoft\.Web/sites/([^/]+)$'
if [[ ! "${SITE_ID:-}" =~ $site_id_pattern ]]; then
  echo "delivery: SITE_ID '${SITE_ID:-}' is not an App Service site id (/subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.Web/sites/<name>)" >&2
  exit 2
fi
subscription="${BASH_REMATCH[1]}" resource_group="${BASH_REMATCH[2]}" site="${BASH_REMATCH[3]}"
shopt -u nocasematch
if ! command -v az >/dev/null 2>&1; then
  echo "delivery: the Azure CLI 'az' is not on PATH; install it and run 'az login'" >&2
  exit 127
fi
az_version=$(az version --query '"azure-cli"' --output tsv 2>/dev/null || true)
lowest=$(printf '%s\n' "$MIN_AZ_VERSION" "${az_version:-0}" | sort -V | head -n 1)
if [[ ! "$az_version" =~ ^[0-9]+\.[0-9]+\.[0-9]+ || "$lowest" != "$MIN_AZ_VERSION" ]]; then
  echo "delivery: az ${az_version:-(version unreadable)} found, $MIN_AZ_VERSION or later needed (Entra ID sign-in to the deployment endpoint, basic auth is off); run 'az upgrade'" >&2
  exit 2
fi
slot_args=()
target="$site (production)"
if [[ -n "${SLOT:-}" ]]; then
  slot_args=(--slot "$SLOT")
  target="$site (slot $SLOT)"
fi
"""
)

# Refreshes the Key Vault references of every slot in REFERENCE_SLOTS and
# waits until each one (and each name in KEY_VAULT_SETTINGS) reports
# Resolved, else stops naming every unresolved setting, its status and
# Azure's details. The refresh is repeated while a slot has an unresolved
# reference: App Service does not retry a failed resolution on its own before
# its next 24-hour refetch or a configuration change.
_REFERENCES_CHECK = (
    f"REFRESH_API_VERSION={REFERENCES_REFRESH_API_VERSION}\n"
    f"REFERENCES_API_VERSION={REFERENCES_API_VERSION}\n"
    + r"""site_path="/subscriptions/$subscription/resourceGroups/$resource_group/providers/Microsoft.Web/sites/$site"
check_references() {  # $1: production or a slot name; appends to resolved / unresolved (lines "<setting> of <target> ...")
  local where="$1" path="$site_path" label="$site (production)" listing id setting status details seen=" "
  if [[ "$where" != production ]]; then
    path="$site_path/slots/$where" label="$site (slot $where)"
  fi
  az rest --method post --output none \
    --uri "https://management.azure.com$path/config/configreferences/appsettings/refresh?api-version=$REFRESH_API_VERSION"
  listing=$(az rest --method get --output tsv \
    --uri "https://management.azure.com$path/config/configreferences/appsettings?api-version=$REFERENCES_API_VERSION" \
    --query "value[].[id, properties.status, properties.details]")
  while IFS=$'\t' read -r id status details; do
    [[ -n "$id" ]] || continue
    setting="${id##*/}"  # the id ends .../config/configreferences/appsettings/<setting>
    seen="$seen$setting "
    if [[ "$status" == Resolved ]]; then
      resolved+=("$setting of $label is Resolved")
    else
      unresolved+=("$setting of $label is ${status:-without a status}: ${details:-Azure gave no details}")
    fi
  done <<< "$listing"
  for setting in ${KEY_VAULT_SETTINGS:-}; do
    if [[ "$seen" != *" $setting "* ]]; then
      unresolved+=("$setting of $label is not listed: App Service reports no Key Vault reference for it")
    fi
  done
}
pending="${REFERENCE_SLOTS:-}"
deadline=$((SECONDS + REFERENCE_TIMEOUT_SECONDS))
confirmed=()
while [[ -n "$pending" ]]; do
  unresolved=() still=""
  for where in $pending; do
    resolved=() before=${#unresolved[@]}
    check_references "$where"
    if (( ${#unresolved[@]} > before )); then
      still="$still $where"
    else
      confirmed+=(${resolved[@]+"${resolved[@]}"})
    fi
  done
  if [[ -z "$still" ]]; then
    if (( ${#confirmed[@]} )); then
      printf 'delivery: Key Vault reference %s\n' "${confirmed[@]}"
    else
      echo "delivery: $site has no Key Vault references to resolve"
    fi
    break
  fi
  if (( SECONDS >= deadline )); then
    printf 'delivery: Key Vault reference %s\n' "${unresolved[@]}" >&2
    echo "delivery: Key Vault references of $site still unresolved after ${REFERENCE_TIMEOUT_SECONDS}s; nothing deployed (README: \"Diagnose an unresolved Key Vault reference\")" >&2
    exit 4
  fi
  # Only the slots with an unresolved reference are refreshed again.
  pending="${still# }"
  sleep "$REFERENCE_POLL_SECONDS"
done
"""
)

DEPLOY_SCRIPT = (
    _SITE_PREAMBLE
    + r"""if [[ ! -f "$PACKAGE_PATH" ]]; then
  echo "delivery: package '$PACKAGE_PATH' not found in $PWD; run pulumi from the project root" >&2
  exit 2
fi
if [[ -n "${PACKAGE_SHA256:-}" ]]; then
  if command -v sha256sum >/dev/null 2>&1; then
    actual=$(sha256sum "$PACKAGE_PATH" | cut -d ' ' -f 1)
  else
    actual=$(shasum -a 256 "$PACKAGE_PATH" | cut -d ' ' -f 1)
  fi
  if [[ "$actual" != "$PACKAGE_SHA256" ]]; then
    echo "delivery: '$PACKAGE_PATH' has sha256 $actual, expected $PACKAGE_SHA256 (was it rebuilt by another run?)" >&2
    exit 3
  fi
fi
"""
    + _REFERENCES_CHECK
    + r"""echo "delivery: zip deploy of $PACKAGE_PATH to $target"
az webapp deploy --subscription "$subscription" --resource-group "$resource_group" --name "$site" \
  ${slot_args[@]+"${slot_args[@]}"} --src-path "$PACKAGE_PATH" --type zip --output none
echo "delivery: deployed ${PACKAGE_SHA256:-$PACKAGE_PATH} to $target"
"""
)

# Which build production serves, from the build id its /health reports (components/package.py, mcp-build.txt);
# "none" when it answers without one (a build from before the marker existed). Exits 5 when production does not
# answer: without knowing, a swap could not tell whether it already happened.
_PRODUCTION_BUILD = r"""if ! command -v curl >/dev/null 2>&1; then
  echo "delivery: 'curl' is not on PATH; the swap asks production's /health which build it serves" >&2
  exit 127
fi
build_pattern='"build": *"([0-9a-f]{64})"'
production_build() {
  local body
  if ! body=$(curl --silent --show-error --fail --max-time 10 --retry "$PROBE_RETRIES" --retry-delay 3 \
      --retry-connrefused "$PRODUCTION_URL/health"); then
    echo "delivery: production of $site did not answer $PRODUCTION_URL/health, so which build it serves is unknown; nothing swapped" >&2
    return 5
  fi
  if [[ "$body" =~ $build_pattern ]]; then
    echo "${BASH_REMATCH[1]}"
  else
    echo none
  fi
}
"""

_BASELINE = r"""baseline=$(production_build)
echo "delivery: before swap '$SWAP', production of $site serves build $baseline" >&2
echo "$baseline"
"""
SWAP_BASELINE_SCRIPT = _SITE_PREAMBLE + _PRODUCTION_BUILD + _BASELINE

_SWAP = r"""if [[ -z "${SLOT:-}" ]]; then
  echo "delivery: SLOT is empty; a swap needs the source slot" >&2
  exit 2
fi
baseline="${BASELINE_BUILD//[[:space:]]/}"
if [[ -z "$baseline" ]]; then
  echo "delivery: BASELINE_BUILD is empty; the swap needs the build production served when swap '$SWAP' was requested" >&2
  exit 2
fi
current=$(production_build)
if [[ "$current" != "$baseline" ]]; then
  echo "delivery: production of $site serves build $current, not $baseline as when swap '$SWAP' was requested: that swap already happened; nothing swapped"
  exit 0
fi
echo "delivery: swapping slot $SLOT into production of $site (swap '$SWAP'; production serves build $baseline)"
az webapp deployment slot swap --subscription "$subscription" --resource-group "$resource_group" --name "$site" \
  --slot "$SLOT" --target-slot production --output none
echo "delivery: slot $SLOT is now production of $site (swap '$SWAP')"
"""
SWAP_SCRIPT = _SITE_PREAMBLE + _PRODUCTION_BUILD + _SWAP

# For a site that admits only Front Door (components/front_door_lock.py): an Allow rule for this machine's public
# address, added for the script's run and removed when it exits, however it exits; a rule a killed run left behind
# is removed first. Messages go to stderr: a baseline's stdout is the build it reports.
_CLIENT_RULE = r"""restriction=(--subscription "$subscription" --resource-group "$resource_group" --name "$site")
client_address="${MCP_DELIVERY_CLIENT_ADDRESS:-}"
if [[ -z "$client_address" ]] && ! client_address=$(curl --silent --show-error --fail --max-time 10 "$ADDRESS_ECHO_URL"); then
  echo "delivery: region $REGION: this machine's public address is unknown ($ADDRESS_ECHO_URL did not answer); set MCP_DELIVERY_CLIENT_ADDRESS to it; nothing swapped" >&2
  exit 6
fi
client_address="${client_address//[[:space:]]/}"
if [[ ! "$client_address" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]]; then
  echo "delivery: region $REGION: '$client_address' is not an IPv4 address (MCP_DELIVERY_CLIENT_ADDRESS or $ADDRESS_ECHO_URL); nothing swapped" >&2
  exit 6
fi
stale=$(az webapp config access-restriction show "${restriction[@]}" --output tsv \
  --query "ipSecurityRestrictions[?name=='$CLIENT_RULE_NAME'].name")
for rule in $stale; do
  echo "delivery: region $REGION: removing access rule $rule a previous delivery left on $site" >&2
  az webapp config access-restriction remove "${restriction[@]}" --rule-name "$rule" --output none
done
remove_client_rule() {
  if ! az webapp config access-restriction remove "${restriction[@]}" --rule-name "$CLIENT_RULE_NAME" --output none; then
    echo "delivery: region $REGION: access rule $CLIENT_RULE_NAME is still on $site; the next delivery removes it" >&2
  fi
}
az webapp config access-restriction add "${restriction[@]}" --rule-name "$CLIENT_RULE_NAME" --action Allow \
  --ip-address "$client_address/32" --priority "$CLIENT_RULE_PRIORITY" --output none
trap remove_client_rule EXIT
echo "delivery: region $REGION: $site admits $client_address/32 while this step runs (rule $CLIENT_RULE_NAME)" >&2
"""

_VERIFY = r"""if ! current=$(production_build); then
  echo "delivery: region $REGION: production did not answer through $PRODUCTION_URL after swap '$SWAP'; stopped here, the regions after $REGION keep the build they serve" >&2
  exit 7
fi
if [[ "$current" != "$EXPECTED_BUILD" ]]; then
  echo "delivery: region $REGION: production of $site serves build $current, not $EXPECTED_BUILD, after swap '$SWAP'; stopped here, the regions after $REGION keep the build they serve" >&2
  exit 7
fi
echo "delivery: region $REGION: production of $site answers through $PRODUCTION_URL with build $EXPECTED_BUILD"
"""

LOCKED_SWAP_BASELINE_SCRIPT = _SITE_PREAMBLE + _PRODUCTION_BUILD + _CLIENT_RULE + _BASELINE
LOCKED_SWAP_SCRIPT = _SITE_PREAMBLE + _PRODUCTION_BUILD + _CLIENT_RULE + _SWAP
VERIFY_SCRIPT = _SITE_PREAMBLE + _PRODUCTION_BUILD + _CLIENT_RULE + _VERIFY
# The access rule of a region-by-region step: above Front Door's (components/front_door_lock.py, 100) in precedence.
CLIENT_RULE_NAME = "mcpscale-delivery"
CLIENT_RULE_PRIORITY = 50
# Answers with the caller's public address as plain text; MCP_DELIVERY_CLIENT_ADDRESS in the deployer's
# environment takes its place.
ADDRESS_ECHO_URL = "https://api.ipify.org"
# A new access rule takes a moment to apply on every front end: the verification asks more often than a swap does.
VERIFY_RETRIES = 10

CANARY_SCRIPT = release_script(_SITE_PREAMBLE)


@dataclass(frozen=True)
class DeliveryArgs:
    site_id: pulumi.Input[str]
    """Resource id of the production site (``WebApp.id``)."""
    package: AppPackage
    """The built package (``components.package.build_package()``)."""
    staging_slot: str | None
    """Short name of the staging slot (e.g. ``"staging"``), or None when the slot is off."""
    swap: str | None = None
    """The ``swap`` config value: each new value swaps staging into production once."""
    depends_on: Sequence[pulumi.Resource] = ()
    """What must exist before code is deployed: the slot, app settings, sticky setting names."""
    key_vault_settings: Sequence[str] = ()
    """App settings that hold Key Vault references; each must resolve on every slot before a deploy."""
    production_url: pulumi.Input[str] | None = None
    """``https://<default host name>`` of production, whose /health says which build it serves; needed by ``swap``."""
    canary: CanaryPolicy | None = None
    """Release each new package to a share of production traffic first (components/canary.py); None: off."""
    app_insights_id: pulumi.Input[str] | None = None
    """Resource id of the Application Insights component the canary gate queries (needed with ``canary``)."""

    def __post_init__(self) -> None:
        if self.staging_slot is not None and (not self.staging_slot or self.staging_slot == PRODUCTION_SLOT):
            raise ValueError(
                f"staging_slot must name a deployment slot other than production, got {self.staging_slot!r}"
            )
        if self.swap is not None and not self.swap.strip():
            raise ValueError("swap must be a non-empty string (any new value swaps once) or unset")
        if self.swap is not None and self.staging_slot is None:
            raise ValueError(f"swap={self.swap!r} needs the staging slot, but the staging slot is off")
        if self.swap is not None and self.production_url is None:
            raise ValueError(f"swap={self.swap!r} needs production_url, to ask production which build it serves")
        bad = [name for name in self.key_vault_settings if not re.fullmatch(r"[A-Za-z0-9_.\-]+", name)]
        if bad:
            raise ValueError(f"key_vault_settings {bad!r}: app setting names are letters, digits, '_', '.' and '-'")
        if self.canary is not None and (self.staging_slot is None or self.app_insights_id is None):
            raise ValueError("canary needs the staging slot and app_insights_id (the telemetry it is judged by)")


class Delivery(pulumi.ComponentResource):
    """Deploys the app package to the site (through the staging slot) and swaps on request."""

    staging_deploy: local.Command | None
    production_deploy: local.Command
    swap_baseline: local.Command | None
    """Records which build production serves when a swap value is first applied."""
    swap: local.Command | None
    canary: local.Command | None
    package_sha256: str
    deploy_target: str

    def __init__(self, name: str, args: DeliveryArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mcpscale:azure:Delivery", name, None, opts)
        package = args.package
        after_setup = list(args.depends_on)

        def command(
            suffix: str,
            script: str,
            environment: dict[str, pulumi.Input[str]],
            triggers: list[pulumi.Input[str]],
            depends_on: Sequence[pulumi.Resource | None],
        ) -> local.Command:
            return local.Command(
                f"{name}-{suffix}",
                create=script,
                update=NO_OP_UPDATE,
                interpreter=INTERPRETER,
                environment=environment,
                triggers=triggers,
                # A rerun needs nothing from the previous run's output.
                add_previous_output_in_env=False,
                logging=local.Logging.STDOUT_AND_STDERR,
                opts=pulumi.ResourceOptions(
                    parent=self,
                    depends_on=[d for d in depends_on if d is not None],
                    replace_on_changes=REPLACE_ON,
                ),
            )

        slots = [PRODUCTION_SLOT] if args.staging_slot is None else [PRODUCTION_SLOT, args.staging_slot]
        deploy_environment = {
            "SITE_ID": args.site_id,
            "PACKAGE_PATH": package.relative_path,
            "REFERENCE_SLOTS": " ".join(slots),
            "KEY_VAULT_SETTINGS": " ".join(args.key_vault_settings),
            "REFERENCE_TIMEOUT_SECONDS": str(REFERENCE_TIMEOUT_SECONDS),
            "REFERENCE_POLL_SECONDS": str(REFERENCE_POLL_SECONDS),
        }
        hashed_environment = {**deploy_environment, "PACKAGE_SHA256": package.sha256}

        if args.staging_slot is None:
            self.staging_deploy = None
            self.production_deploy = command(
                "production-deploy", DEPLOY_SCRIPT, hashed_environment, [args.site_id, package.sha256], after_setup
            )
            self.deploy_target = PRODUCTION_SLOT
        else:
            self.staging_deploy = command(
                "staging-deploy",
                DEPLOY_SCRIPT,
                {**hashed_environment, "SLOT": args.staging_slot},
                [args.site_id, package.sha256],
                after_setup,
            )
            # No hash anywhere in its inputs: runs once per site, never on a code change.
            self.production_deploy = command(
                "production-deploy", DEPLOY_SCRIPT, deploy_environment, [args.site_id], after_setup
            )
            self.deploy_target = args.staging_slot

        self.swap_baseline = None
        probe: dict[str, pulumi.Input[str]] = {}
        if args.swap is not None:
            probe = {
                "SITE_ID": args.site_id,
                "PRODUCTION_URL": args.production_url,
                "PROBE_RETRIES": str(PROBE_RETRIES),
                "SWAP": args.swap,
            }
            # Same trigger as the swap, so it runs once per swap value and its output outlives a failed swap.
            self.swap_baseline = command(
                "swap-baseline",
                SWAP_BASELINE_SCRIPT,
                probe,
                [args.swap],
                [*after_setup, self.staging_deploy, self.production_deploy],
            )

        self.canary = None
        if args.canary is not None:
            assert args.staging_slot is not None and args.app_insights_id is not None  # DeliveryArgs checks both
            self.canary = command(
                "canary",
                CANARY_SCRIPT,
                release_environment(args.site_id, args.staging_slot, args.app_insights_id, package.sha256, args.canary),
                [args.site_id, package.sha256],
                # After the swap's baseline: a canary that promotes makes a swap of the same `pulumi up` a no-op,
                # instead of that swap putting the old build back.
                [*after_setup, self.staging_deploy, self.production_deploy, self.swap_baseline],
            )

        self.swap = None
        if args.swap is not None:
            assert self.swap_baseline is not None
            self.swap = command(
                "swap",
                SWAP_SCRIPT,
                {**probe, "SLOT": args.staging_slot, "BASELINE_BUILD": self.swap_baseline.stdout},
                [args.swap],
                # After a release of the same `pulumi up`: a swap and a canary's swap never race.
                [*after_setup, self.staging_deploy, self.production_deploy, self.swap_baseline, self.canary],
            )

        self.package_sha256 = package.sha256
        self.register_outputs(
            {
                "packageSha256": package.sha256,
                "deployTarget": self.deploy_target,
                "swap": args.swap,
            }
        )


@dataclass(frozen=True)
class RegionTarget:
    """One region's site for :class:`RegionalSwaps`."""

    region: str
    site_id: pulumi.Input[str]
    production_url: pulumi.Input[str]
    """``https://<default host name>``: the region's own host name, not Front Door's."""
    staging_slot: str
    deployed: Sequence[pulumi.Resource]
    """The region's deploy commands (a :class:`Delivery`'s): every region's finish before the first swap."""
    swapped_before: tuple[pulumi.Resource, str] | None = None
    """The Delivery and its name whose ``swap`` and ``swap-baseline`` these commands take over (the primary
    region's, from before Front Door): aliased, so turning Front Door on with ``swap`` set swaps nothing again."""


@dataclass(frozen=True)
class RegionalSwapsArgs:
    regions: Sequence[RegionTarget]
    """In swap order, the primary first."""
    swap: str
    """The ``swap`` config value: each new value swaps every region once, one after the other."""
    build_id: str
    """The package's build id (components/package.py), which each swapped production must report."""

    def __post_init__(self) -> None:
        if not self.regions:
            raise ValueError("RegionalSwapsArgs.regions: expected at least one region")
        if not self.swap.strip():
            raise ValueError("RegionalSwapsArgs.swap must be a non-empty string (any new value swaps once)")
        missing = [r.region for r in self.regions if not r.staging_slot or r.staging_slot == PRODUCTION_SLOT]
        if missing:
            raise ValueError(f"RegionalSwapsArgs.regions: {', '.join(missing)} need a staging slot to swap from")


class RegionalSwaps(pulumi.ComponentResource):
    """Swaps staging into production one region at a time, each after the previous region's production answers.

    Per region, in order, three commands triggered by ``swap`` alone:
    ``<name>-<region>-swap-baseline`` and ``<name>-<region>-swap`` (the
    single-site :data:`SWAP_BASELINE_SCRIPT` and :data:`SWAP_SCRIPT`, so a
    retried swap never swaps back), then ``<name>-<region>-verify``, which
    asks that production's ``/health`` through the site's own host name for
    the new build. The first region's swap waits for every region's deploy;
    each later one for the previous region's verification, so the first
    failure stops the rollout there, naming the region, and every region
    after it keeps serving its build. The sites admit only Front Door, so
    each command admits the deploying machine's address for its run
    (:data:`_CLIENT_RULE`; docs/operations.md, "Region by region").
    """

    baselines: list[local.Command]
    swaps: list[local.Command]
    verifications: list[local.Command]

    def __init__(self, name: str, args: RegionalSwapsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mcpscale:azure:RegionalSwaps", name, None, opts)
        deployed = [d for target in args.regions for d in target.deployed]
        self.baselines, self.swaps, self.verifications = [], [], []
        previous: list[pulumi.Resource] = []

        def command(
            target: RegionTarget,
            suffix: str,
            script: str,
            environment: dict[str, pulumi.Input[str]],
            depends_on: Sequence[pulumi.Resource],
            took_over: str | None = None,
        ) -> local.Command:
            aliases = []
            if target.swapped_before is not None and took_over is not None:
                parent, delivery = target.swapped_before
                aliases = [pulumi.Alias(name=f"{delivery}-{took_over}", parent=parent)]
            return local.Command(
                f"{name}-{target.region}-{suffix}",
                create=script,
                update=NO_OP_UPDATE,
                interpreter=INTERPRETER,
                environment=environment,
                triggers=[args.swap],
                add_previous_output_in_env=False,
                logging=local.Logging.STDOUT_AND_STDERR,
                opts=pulumi.ResourceOptions(
                    parent=self, depends_on=list(depends_on), replace_on_changes=REPLACE_ON, aliases=aliases
                ),
            )

        for target in args.regions:
            probe: dict[str, pulumi.Input[str]] = {
                "SITE_ID": target.site_id,
                "PRODUCTION_URL": target.production_url,
                "PROBE_RETRIES": str(PROBE_RETRIES),
                "SWAP": args.swap,
                "REGION": target.region,
                "CLIENT_RULE_NAME": CLIENT_RULE_NAME,
                "CLIENT_RULE_PRIORITY": str(CLIENT_RULE_PRIORITY),
                "ADDRESS_ECHO_URL": ADDRESS_ECHO_URL,
            }
            after = [*deployed, *previous]
            baseline = command(target, "swap-baseline", LOCKED_SWAP_BASELINE_SCRIPT, probe, after, "swap-baseline")
            swap = command(
                target,
                "swap",
                LOCKED_SWAP_SCRIPT,
                {**probe, "SLOT": target.staging_slot, "BASELINE_BUILD": baseline.stdout},
                [*after, baseline],
                "swap",
            )
            verify = command(
                target,
                "verify",
                VERIFY_SCRIPT,
                {**probe, "PROBE_RETRIES": str(VERIFY_RETRIES), "EXPECTED_BUILD": args.build_id},
                [*after, swap],
            )
            self.baselines.append(baseline)
            self.swaps.append(swap)
            self.verifications.append(verify)
            previous = [verify]
        self.register_outputs({"swap": args.swap, "regions": [t.region for t in args.regions]})
