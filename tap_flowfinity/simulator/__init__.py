"""A Flowfinity REST API simulator: real HTTP, for tests, demos and benchmarks.

`Simulator` (service.py) is the in-process API and documents the endpoints; faults.py the
scriptable faults; records.py the shared submission counter and held submissions.
"""

from tap_flowfinity.simulator.faults import Fault, FaultBook
from tap_flowfinity.simulator.records import Held, Store
from tap_flowfinity.simulator.service import Simulator

__all__ = ["Fault", "FaultBook", "Held", "Simulator", "Store"]
