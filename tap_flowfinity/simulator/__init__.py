"""A Flowfinity REST API simulator: real HTTP, for tests, demos and benchmarks.

See service.py for the endpoints and faults.py for the scriptable faults.
"""

from tap_flowfinity.simulator.faults import Fault
from tap_flowfinity.simulator.records import Held
from tap_flowfinity.simulator.service import Simulator

__all__ = ["Fault", "Held", "Simulator"]
