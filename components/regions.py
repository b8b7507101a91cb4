"""The Azure regions a stamp may go to, and which of them can spread a plan over availability zones.

A region is accepted when App Service offers Linux plans of the Premium v3
tier there (``az appservice list-locations --sku P1V3 --linux-workers-enabled``;
Learn, "Configure Premium V3 tier for Azure App Service", Premium V3
availability): the tier this project's production stacks run, and the one a
region's plan must be able to move to. Regions open only on request (France
South, Germany North, Norway West, Switzerland West, UAE Central, South
Africa West, Brazil Southeast, Australia Central 2) are left out: a stack
there would fail at its first ``pulumi up`` for most subscriptions. Which
regions have availability zones is Learn's "Azure regions list"
(learn.microsoft.com/azure/reliability/regions-list, the availability zones
column; checked against the page of 2025-09-23); a zone-redundant plan
needs them. Regions that page marks restricted (Jio India West among them)
are left out for the same reason; Austria East and Belgium Central, which it
lists but the Premium v3 snapshot predates, until the command above lists
them.

The table is a snapshot of both pages for the public cloud. A region missing
from it is refused with the list of those it holds; add it here (with its
zones) once the command above lists it.
"""

from __future__ import annotations

from collections.abc import Mapping

# Region name (as ARM and `az account list-locations` spell it) -> has availability zones.
REGIONS: Mapping[str, bool] = {
    # Americas
    "brazilsouth": True,
    "canadacentral": True,
    "canadaeast": False,
    "centralus": True,
    "chilecentral": True,
    "eastus": True,
    "eastus2": True,
    "mexicocentral": True,
    "northcentralus": False,
    "southcentralus": True,
    "westcentralus": False,
    "westus": False,
    "westus2": True,
    "westus3": True,
    # Europe
    "francecentral": True,
    "germanywestcentral": True,
    "italynorth": True,
    "northeurope": True,
    "norwayeast": True,
    "polandcentral": True,
    "spaincentral": True,
    "swedencentral": True,
    "switzerlandnorth": True,
    "uksouth": True,
    "ukwest": False,
    "westeurope": True,
    # Middle East and Africa
    "israelcentral": True,
    "qatarcentral": True,
    "southafricanorth": True,
    "uaenorth": True,
    # Asia Pacific
    "australiacentral": False,
    "australiaeast": True,
    "australiasoutheast": False,
    "centralindia": True,
    "eastasia": True,
    "indonesiacentral": True,
    "japaneast": True,
    "japanwest": True,
    "koreacentral": True,
    "koreasouth": False,
    "malaysiawest": True,
    "newzealandnorth": True,
    "southeastasia": True,
    "southindia": False,
    "westindia": False,
}

MAX_REGIONS = 5
"""Stamps one stack deploys. Each region is a whole stamp (plan, sites, vault, alerts) that a ``pulumi up`` creates and
a swap promotes one region after the other, so a delivery's length grows with every region; five cover one region
per continent with clients, or two pairs in two geographies and a fifth, beyond which Front Door's edge, not another
origin, is what brings a client closer. A fleet needing more is several stacks, each its own failure domain."""


def has_zones(region: str) -> bool | None:
    """Whether ``region`` has availability zones; None for a region the table does not know."""
    return REGIONS.get(region)
