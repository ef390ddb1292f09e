"""The Singer SDK's standard tap tests, against the simulator over real HTTP."""

from __future__ import annotations

import atexit

import pytest
from singer_sdk.testing import get_tap_test_class

from flowfinity_simulator import Simulator
from tap_flowfinity.tap import TapFlowfinity

pytestmark = pytest.mark.e2e  # starts a server (the simulator, PostgreSQL or both)

# The SDK builds its test class at import time from a config, so the simulator starts here.
SIMULATOR = Simulator(username="integration", password="sdk-suite-password", port=0).start()
atexit.register(SIMULATOR.stop)

SAMPLE_CONFIG = {
    "username": "integration",
    "password": "sdk-suite-password",
    "views": [{"name": key, "url": SIMULATOR.view_url(key)} for key in SIMULATOR.view_keys()],
}

TestTapFlowfinity = get_tap_test_class(tap_class=TapFlowfinity, config=SAMPLE_CONFIG)
