"""The fleet's capacity on paper: from measured requests per second per worker to the ceiling of a multi-region fleet.

    uv run python bench/capacity_chart.py                  # writes docs/scale-ceiling.svg, prints the tables
    uv run python bench/capacity_chart.py --out /tmp/c.svg

The model (docs/scale.md explains each input and where it comes from):

    per instance  = requests/s per worker (measured, bench/RESULTS.md) x workers per instance
                    (one uvicorn worker per core) x the CPU share autoscale runs at
    app ceiling   = per instance x instances per region x regions
    fleet ceiling = the app ceiling, capped by Front Door's requests per second per profile

and the cost of a million tool calls at list prices: the plan's instance-hours
for the calls, plus Front Door's per-request charge and the bytes it sends to
clients. The chart is plain SVG so the script needs nothing beyond the
standard library.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "docs" / "scale-ceiling.svg"


@dataclass(frozen=True)
class Workload:
    name: str
    # Requests per second one uvicorn worker served on one core of the benchmark machine (bench/RESULTS.md).
    rps_per_worker: float
    measured_at: str


# bench/RESULTS.md, Transport ratios, the full run at 7289aa7 (one worker pinned to one core).
PROD_WHOAMI = Workload("tools/call whoami, telemetry on (as deployed)", 17904, "7289aa7")
BYO_QUOTE = Workload("tools/call quote, a team's typed tool (telemetry off)", 12884, "7289aa7")
WORKLOADS = (PROD_WHOAMI, BYO_QUOTE)

# One uvicorn worker per core (components/fleet.py: workers = the SKU's cores); P0v3 has one.
P0V3_CORES = 1
# Autoscale adds an instance above this average CPU (components/fleet.py, cpu_scale_out_threshold):
# the share of each core the fleet is planned to use.
PLANNED_CPU_SHARE = 0.70
# Instances per plan: Premium v3 (P0v3's tier) 30, Standard 10 (components/settings.py); the stack's
# default autoscaleMaxCount is 10.
MAX_INSTANCES = {"PremiumV3": 30, "Standard": 10}
DEFAULT_MAX_INSTANCES = 10

# Azure Front Door Standard and Premium: maximum requests per second per profile
# (learn.microsoft.com/azure/azure-resource-manager/management/azure-subscription-service-limits,
# "Azure Front Door Standard and Premium service limits"; more by a support request).
FRONT_DOOR_RPS_PER_PROFILE = 100_000

# List prices, USD, pay-as-you-go (docs/scale.md, Cost, says where each comes from and when).
P0V3_LINUX_PER_HOUR = 0.0775  # East US, Linux
FRONT_DOOR_STANDARD_PER_MONTH = 35.0  # base fee per profile
FRONT_DOOR_STANDARD_PER_10K_REQUESTS = 0.009
FRONT_DOOR_EGRESS_PER_GB = 0.083  # Front Door to clients, North America / Europe, first 10 TB
# What a tool call moves to the client: a small JSON-RPC result (request and response bodies, headers).
BYTES_PER_CALL = 1024
HOURS_PER_MONTH = 730


def instance_rps(workload: Workload, cores: int = P0V3_CORES, cpu_share: float = PLANNED_CPU_SHARE) -> float:
    """Requests per second one instance serves at the planned CPU share."""
    return workload.rps_per_worker * cores * cpu_share


def app_ceiling(workload: Workload, instances: int, regions: int) -> float:
    """What the plans can serve: every region's instances at the planned CPU share."""
    return instance_rps(workload) * instances * regions


def fleet_ceiling(workload: Workload, instances: int, regions: int) -> float:
    """What the fleet can serve behind one Front Door profile."""
    return min(app_ceiling(workload, instances, regions), FRONT_DOOR_RPS_PER_PROFILE)


def instances_to_front_door_limit(workload: Workload) -> int:
    """Instances (over all regions) from which Front Door's per-profile limit, not the plans, is the ceiling."""
    return math.ceil(FRONT_DOOR_RPS_PER_PROFILE / instance_rps(workload))


def compute_cost_per_million(workload: Workload) -> float:
    """Instance-hours of P0v3 for a million calls at the planned CPU share."""
    calls_per_instance_hour = instance_rps(workload) * 3600
    return P0V3_LINUX_PER_HOUR * 1_000_000 / calls_per_instance_hour


def front_door_cost_per_million() -> float:
    """Front Door Standard's request charge and client egress for a million calls (the base fee aside)."""
    requests = FRONT_DOOR_STANDARD_PER_10K_REQUESTS * 100
    egress = FRONT_DOOR_EGRESS_PER_GB * BYTES_PER_CALL * 1_000_000 / 1e9
    return requests + egress


def monthly_cost(instances: int, regions: int) -> float:
    """The month of a fleet that keeps ``instances`` P0v3 in each region, Front Door's base fee included."""
    return instances * regions * P0V3_LINUX_PER_HOUR * HOURS_PER_MONTH + FRONT_DOOR_STANDARD_PER_MONTH


def cost_per_million_at(rps: float, instances: int, regions: int) -> float:
    """A million calls' share of the month at a steady ``rps`` on that fleet, plus Front Door's per-call charges."""
    calls_per_month = rps * 3600 * HOURS_PER_MONTH
    return monthly_cost(instances, regions) * 1_000_000 / calls_per_month + front_door_cost_per_million()


def ceiling_table() -> str:
    """The ceiling (requests/s) for each workload against instances per region and regions, as markdown."""
    lines = [
        "| workload | per instance | instances per region | plans alone, 1 region | behind Front Door: 1 region "
        "| 2 regions | 3 regions |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for workload in WORKLOADS:
        for instances in (3, DEFAULT_MAX_INSTANCES, MAX_INSTANCES["PremiumV3"]):
            cells = [f"{app_ceiling(workload, instances, 1):,.0f}"]
            cells += [f"{fleet_ceiling(workload, instances, regions):,.0f}" for regions in (1, 2, 3)]
            row = [workload.name, f"{instance_rps(workload):,.0f}", str(instances), *cells]
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def cost_table() -> str:
    """Cost per million tool calls (USD, list prices) at the ceiling and at lighter steady loads, as markdown."""
    workload = PROD_WHOAMI
    lines = [
        "| steady load | fleet | USD per month | USD per million calls |",
        "|---|---|---:|---:|",
    ]
    at_ceiling = compute_cost_per_million(workload) + front_door_cost_per_million()
    lines.append(f"| at the plans' ceiling, any size | busy instances only | | {at_ceiling:.3f} |")
    for rps, instances, regions in ((100, 3, 1), (100, 3, 2), (1000, 3, 2), (10000, 10, 2)):
        month = monthly_cost(instances, regions)
        per_million = cost_per_million_at(rps, instances, regions)
        fleet = f"{instances} x P0v3 in {regions} region(s)"
        lines.append(f"| {rps:,} req/s | {fleet} | {month:,.0f} | {per_million:.3f} |")
    return "\n".join(lines)


def chart_svg() -> str:
    """The plans' ceiling (whoami) against instances per region, one line per region count, and Front Door's, as SVG."""
    width, height, left, bottom, top, right = 720, 420, 80, 50, 30, 150
    max_instances = MAX_INSTANCES["PremiumV3"]
    y_max = 1_200_000
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(instances: float) -> float:
        return left + (instances - 1) / (max_instances - 1) * plot_w

    def y(rps: float) -> float:
        return top + plot_h - min(rps, y_max) / y_max * plot_h

    colours = {1: "#1f77b4", 2: "#ff7f0e", 3: "#2ca02c"}
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f"<title>Fleet ceiling: {PROD_WHOAMI.name}, P0v3, {PLANNED_CPU_SHARE:.0%} CPU</title>",
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="black"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="black"/>',
    ]
    for tick in range(0, y_max + 1, 200_000):
        parts.append(f'<line x1="{left - 4}" y1="{y(tick):.1f}" x2="{left}" y2="{y(tick):.1f}" stroke="black"/>')
        parts.append(f'<text x="{left - 8}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick // 1000}k</text>')
    for tick in (1, 5, 10, 15, 20, 25, 30):
        bottom_y = top + plot_h
        tick_x = f"{x(tick):.1f}"
        parts.append(f'<line x1="{tick_x}" y1="{bottom_y}" x2="{tick_x}" y2="{bottom_y + 4}" stroke="black"/>')
        parts.append(f'<text x="{tick_x}" y="{bottom_y + 18}" text-anchor="middle">{tick}</text>')
    parts.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 10}" text-anchor="middle">P0v3 instances per region</text>'
    )
    parts.append(
        f'<text x="20" y="{top + plot_h / 2:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 20 {top + plot_h / 2:.1f})">requests per second</text>'
    )
    for regions, colour in colours.items():
        ceilings = [(n, app_ceiling(PROD_WHOAMI, n, regions)) for n in range(1, max_instances + 1)]
        points = " ".join(f"{x(n):.1f},{y(rps):.1f}" for n, rps in ceilings)
        parts.append(f'<polyline class="plans" points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
        label_y = top + 20 * regions
        parts.append(
            f'<line x1="{left + plot_w + 10}" y1="{label_y}" x2="{left + plot_w + 30}" y2="{label_y}" '
            f'stroke="{colour}" stroke-width="2"/>'
        )
        parts.append(f'<text x="{left + plot_w + 35}" y="{label_y + 4}">plans, {regions} region(s)</text>')
    limit_y = y(FRONT_DOOR_RPS_PER_PROFILE)
    parts.append(
        f'<line class="front-door" x1="{left}" y1="{limit_y:.1f}" x2="{left + plot_w}" y2="{limit_y:.1f}" '
        'stroke="#d62728" stroke-width="2" stroke-dasharray="6 4"/>'
    )
    parts.append(f'<text x="{left + plot_w + 10}" y="{limit_y + 4:.1f}" fill="#d62728">Front Door, per profile</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=CHART, help=f"where to write the SVG (default {CHART})")
    args = parser.parse_args(argv)
    args.out.write_text(chart_svg())
    print(ceiling_table())
    print()
    print(cost_table())
    whoami, quote = (instances_to_front_door_limit(w) for w in (PROD_WHOAMI, BYO_QUOTE))
    print(f"\nFront Door's limit is the ceiling from {whoami} instances in all (whoami), {quote} (quote)")
    print(f"chart written to {args.out}")


if __name__ == "__main__":
    main()
