"""The capacity model on paper (bench/capacity_chart.py) and docs/scale.md, which quotes it.

The model's inputs must be the project's own: the measured figures in
bench/RESULTS.md, the workers and instances the stack deploys, Front Door's
probe settings; its arithmetic is checked by hand here, and the tables in
docs/scale.md must be exactly what the script prints.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from bench import capacity_chart as model
from components.settings import PREMIUM_V3, SKUS, STANDARD

ROOT = Path(__file__).resolve().parents[1]
SCALE_DOC = ROOT / "docs" / "scale.md"
RESULTS = ROOT / "bench" / "RESULTS.md"


def test_the_inputs_are_the_stacks_own():
    assert model.P0V3_CORES == SKUS["P0v3"].cores
    assert model.MAX_INSTANCES == {"PremiumV3": PREMIUM_V3.max_instances, "Standard": STANDARD.max_instances}


@pytest.mark.parametrize("workload", model.WORKLOADS, ids=lambda w: w.name)
def test_the_requests_per_second_per_worker_are_the_measured_ones(workload):
    results = RESULTS.read_text()
    assert workload.measured_at in results
    assert re.search(rf"\|\s*{workload.rps_per_worker:.0f}\s*\|", results), workload


def test_an_instance_serves_its_workers_rate_at_the_planned_cpu_share():
    assert model.instance_rps(model.PROD_WHOAMI) == pytest.approx(17904 * 1 * 0.70)
    assert model.instance_rps(model.PROD_WHOAMI, cores=4) == pytest.approx(17904 * 4 * 0.70)


def test_the_fleet_ceiling_is_the_plans_until_front_doors_per_profile_limit():
    per_instance = 17904 * 0.70
    assert model.app_ceiling(model.PROD_WHOAMI, 3, 2) == pytest.approx(per_instance * 6)
    assert model.fleet_ceiling(model.PROD_WHOAMI, 3, 2) == pytest.approx(per_instance * 6)
    assert model.fleet_ceiling(model.PROD_WHOAMI, 30, 3) == 100_000
    # 7 instances serve 87,730 req/s, the 8th takes the plans past the profile's 100,000.
    assert model.instances_to_front_door_limit(model.PROD_WHOAMI) == 8


def test_a_million_calls_cost_the_instance_hours_they_take_and_front_doors_charges():
    instance_hours = 1_000_000 / (17904 * 0.70 * 3600)
    assert model.compute_cost_per_million(model.PROD_WHOAMI) == pytest.approx(instance_hours * 0.0775)
    # $0.009 per 10,000 requests, and 1 KiB each at $0.083 per GB.
    assert model.front_door_cost_per_million() == pytest.approx(0.9 + 1024 * 1e6 / 1e9 * 0.083)
    month = 3 * 2 * 0.0775 * 730 + 35
    assert model.monthly_cost(3, 2) == pytest.approx(month)
    calls = 1000 * 3600 * 730
    per_million = month * 1e6 / calls + model.front_door_cost_per_million()
    assert model.cost_per_million_at(1000, 3, 2) == pytest.approx(per_million)


def test_the_script_draws_the_ceiling_per_region_count_and_front_doors_limit(tmp_path, capsys):
    out = tmp_path / "ceiling.svg"
    model.main(["--out", str(out)])

    svg = ElementTree.parse(out).getroot()
    ns = {"svg": "http://www.w3.org/2000/svg"}
    lines = svg.findall("svg:polyline[@class='plans']", ns)
    assert len(lines) == 3
    assert all(len(line.get("points").split()) == model.MAX_INSTANCES["PremiumV3"] for line in lines)
    assert len(svg.findall("svg:line[@class='front-door']", ns)) == 1
    printed = capsys.readouterr().out
    assert model.ceiling_table() in printed and model.cost_table() in printed


def test_the_committed_chart_is_what_the_script_draws():
    assert (ROOT / "docs" / "scale-ceiling.svg").read_text() == model.chart_svg()


def test_docs_scale_quotes_the_models_tables():
    document = SCALE_DOC.read_text()
    assert model.ceiling_table() in document
    assert model.cost_table() in document
