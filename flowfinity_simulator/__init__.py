"""A Flowfinity REST API simulator: real HTTP, for tests, demos and benchmarks.

`Simulator` (service.py) is the in-process API and documents the endpoints; faults.py the
scriptable faults; records.py the shared submission counter and held submissions.
"""

from flowfinity_simulator.faults import Fault, FaultBook
from flowfinity_simulator.records import Held, Store
from flowfinity_simulator.service import Simulator

__all__ = ["Fault", "FaultBook", "Held", "Simulator", "Store"]
