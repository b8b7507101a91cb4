from __future__ import annotations

import pytest

from tests.app.telemetry.recording import Recorder


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()
