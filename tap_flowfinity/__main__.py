"""The `tap-flowfinity` command, and `python -m tap_flowfinity`.

Importing the Singer SDK and its dependencies creates a few hundred thousand objects that
live as long as the process. Left to the cyclic garbage collector, they are traversed again
and again while they are made and then by every full collection during the sync: about 8%
of a 100k-record first sync (benchmarks/run.py). So the collector rests during the imports
and then sets those objects aside (`gc.freeze`): it still collects everything the run
creates afterwards.
"""

from __future__ import annotations

import gc


def main() -> None:
    """Run the tap's command line (the Singer SDK's), imports first."""
    gc.disable()
    try:
        from tap_flowfinity.tap import TapFlowfinity
    finally:
        gc.freeze()
        gc.enable()
    TapFlowfinity.cli()


if __name__ == "__main__":
    main()
