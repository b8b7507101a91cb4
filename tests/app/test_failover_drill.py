"""Failover drill: two regions behind a Front Door stand-in, one killed under steady load.

Each "region" is what a stamp is from Front Door's side: two real app
processes behind one front end (tests/app/round_robin.py, App Service's load
balancer), sharing the fleet's key rings. The stand-in
(tests/app/front_door_standin.py) probes each region's ``/health`` with the
origin group's own interval, sample size and required successes
(components/front_door.py), every duration scaled by :data:`TIME_SCALE` so
the drill takes seconds.

Under steady load the second region dies (its processes killed, its front end
gone). The drill reports the requests that failed in the failover window and
the time until all traffic is on the first region, and checks both against
what the probe settings allow: the dead region leaves rotation after the
probes that take it below the required successes, and no request fails after
that. A handle minted in the dead region is then accepted by the live one.

Set ``FAILOVER_DRILL_RECORD`` to a file name to also write the figures to
``bench/<name>`` (JSON).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from pathlib import Path

import httpx
import pytest

from components import front_door as fd
from tests.app.front_door_standin import ProbeSettings, front_door
from tests.app.resilience.tools import ToolSchemas, handle_key_id, tally_outcome
from tests.app.resilience.wire import post, rpc
from tests.app.round_robin import round_robin
from tests.app.serving import running_server

# Front Door's 30 s probe interval becomes 1 s here.
TIME_SCALE = 1 / 30
# Scheduling on a shared machine: how late a probe round or a request may run, beyond the settings' own bound.
SLACK_S = 1.0
HANDLE_KEYS = "fleet-1:handle-secret-shared-by-every-region-0123"
REQUEST_STATE_KEYS = "fleet-1:request-state-secret-shared-by-every-region-0123"
LIVE, DEAD = "westeurope", "northeurope"
LOAD_THREADS = 2
# Bounded load: no thread sends more than this, whatever the timing.
MAX_REQUESTS_PER_THREAD = 20_000
BENCH = Path(__file__).resolve().parents[2] / "bench"


@contextlib.contextmanager
def region(name: str, stack: contextlib.ExitStack):
    env = {"MCP_HANDLE_KEYS": HANDLE_KEYS, "MCP_REQUEST_STATE_KEYS": REQUEST_STATE_KEYS, "MCP_SLOT_NAME": name}
    instances = [stack.enter_context(running_server(env=env)) for _ in range(2)]
    front = stack.enter_context(round_robin([instance.url for instance in instances]))
    yield front, instances


class SteadyLoad:
    """Threads sending tools/call whoami through the stand-in until stopped; every answer is kept with its time."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.stop = threading.Event()
        self.answers: list[tuple[float, int]] = []
        self.threads = [threading.Thread(target=self._run) for _ in range(LOAD_THREADS)]

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            for _ in range(MAX_REQUESTS_PER_THREAD):
                if self.stop.is_set():
                    return
                try:
                    status = post(client, self.url, ToolSchemas.whoami()).status_code
                except httpx.HTTPError:
                    status = 0
                self.answers.append((time.monotonic(), status))

    def __enter__(self) -> SteadyLoad:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)


def _tally(client: httpx.Client, url: str, add: int, handle: str | None) -> tuple[int, str]:
    tools = post(client, url, rpc("tools/list"))
    assert tools.status_code == 200, tools.text
    response = post(client, url, ToolSchemas(tools.json()["result"]).tally(add, handle))
    assert response.status_code == 200, response.text
    return tally_outcome(response.json()["result"])


def _wait_until(condition, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)


def test_killing_a_region_moves_all_traffic_to_the_other_within_the_probe_bound_and_its_handles_stay_good():
    settings = ProbeSettings.of_origin_group(TIME_SCALE)
    live_stack, dead_stack = contextlib.ExitStack(), contextlib.ExitStack()
    with live_stack, dead_stack, httpx.Client(timeout=10) as client:
        live_front, _ = live_stack.enter_context(region(LIVE, live_stack))
        dead_front, dead_instances = dead_stack.enter_context(region(DEAD, dead_stack))
        total, minted_in_dead_region = _tally(client, dead_front.mcp_url, 5, None)
        assert (total, handle_key_id(minted_in_dead_region)) == (5, "fleet-1")

        with front_door({LIVE: live_front.url, DEAD: dead_front.url}, settings) as door:
            with SteadyLoad(door.mcp_url) as load:
                _wait_until(lambda: {r for _, r, _ in door.routed} == {LIVE, DEAD}, 5 * settings.interval_s)
                assert {r for _, r, _ in door.routed} == {LIVE, DEAD}, "both regions serve before the drill"
                time.sleep(2 * settings.interval_s)

                for instance in dead_instances:
                    instance.process.kill()
                dead_stack.close()
                killed_at, rounds_at_kill = time.monotonic(), door.probe_rounds

                _wait_until(lambda: DEAD in door.unhealthy_since, 2 * settings.failover_bound_s + SLACK_S)
                assert DEAD in door.unhealthy_since, "the dead region never left rotation"
                left_at, left_in_round = door.unhealthy_since[DEAD]
                # Keep the load on for a while on the live region alone.
                time.sleep(2 * settings.interval_s)

            after_kill = [(t, status) for t, status in load.answers if t >= killed_at]
            failed = [t for t, status in after_kill if status != 200]
            routed_to_dead = [t for t, r, _ in door.routed if r == DEAD and t >= killed_at]
            all_on_live_after_s = (max(routed_to_dead) if routed_to_dead else killed_at) - killed_at
            figures = {
                "time_scale": TIME_SCALE,
                "probe_interval_s": settings.interval_s,
                "sample_size": settings.sample_size,
                "successful_samples_required": settings.successful_samples_required,
                "bound_s": settings.failover_bound_s,
                "out_of_rotation_after_s": round(left_at - killed_at, 3),
                "all_traffic_on_live_region_after_s": round(all_on_live_after_s, 3),
                "probe_rounds_to_leave": left_in_round - rounds_at_kill,
                "requests_after_kill": len(after_kill),
                "requests_failed": len(failed),
                "requests_before_kill": len(load.answers) - len(after_kill),
            }
            print("\nfailover drill:", json.dumps(figures))
            if record := os.environ.get("FAILOVER_DRILL_RECORD"):
                (BENCH / Path(record).name).write_text(json.dumps(figures, indent=2) + "\n")

            # The dead region left rotation after exactly the failed probes the samples allow
            # (one more round when the kill fell inside a round that had already probed it).
            rounds = figures["probe_rounds_to_leave"]
            assert settings.failed_probes_to_leave <= rounds <= settings.failed_probes_to_leave + 1
            assert figures["out_of_rotation_after_s"] <= settings.failover_bound_s + settings.interval_s + SLACK_S
            # Requests fail only in the window: none after the region left rotation (bar one in flight per thread).
            assert len([t for t in failed if t > left_at + SLACK_S]) == 0, failed
            assert len(failed) <= len(routed_to_dead) + LOAD_THREADS
            assert all(r == LIVE and status == 200 for t, r, status in door.routed if t > left_at + SLACK_S)
            assert len(after_kill) > len(failed), "the live region served during and after the drill"

            total, continued = _tally(client, door.mcp_url, 3, minted_in_dead_region)
            assert total == 8
            assert door.routed[-1][1] == LIVE
            assert handle_key_id(continued) == "fleet-1"


def test_the_stand_in_takes_the_origin_groups_settings_scaled_by_one_factor():
    settings = ProbeSettings.of_origin_group(TIME_SCALE)
    assert settings.interval_s == pytest.approx(fd.PROBE_INTERVAL_S * TIME_SCALE)
    assert settings.sample_size == fd.SAMPLE_SIZE
    assert settings.successful_samples_required == fd.SUCCESSFUL_SAMPLES_REQUIRED
    assert settings.failover_bound_s == pytest.approx(fd.failover_bound_s() * TIME_SCALE)
