"""`flowfinity-simulator`: run the simulated Flowfinity site as a process (demo, benchmarks).

Prints one JSON line when ready ({"base_url", "views", "operations"}), also written to
--ready-file, and serves until SIGTERM or Ctrl-C. The password comes from
FLOWFINITY_SIM_PASSWORD or --password and is never printed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path

from tap_flowfinity.simulator.service import Simulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="flowfinity-simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--username", default="integration")
    parser.add_argument("--password", default=None)
    parser.add_argument("--demo-records", type=int, default=25)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--synthetic", type=int, default=0, help="serve N generated leads")
    parser.add_argument("--max-records-per-response", type=int, default=0)
    parser.add_argument("--ready-file", type=Path, default=None)
    parser.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --host")
    args = parser.parse_args(argv)
    password = args.password or os.environ.get("FLOWFINITY_SIM_PASSWORD", "dev-simulator-password")
    try:
        sim = Simulator(
            username=args.username,
            password=password,
            host=args.host,
            port=args.port,
            demo_records=args.demo_records,
            seed=args.seed,
            synthetic=args.synthetic,
            max_records_per_response=args.max_records_per_response,
            allow_remote=args.allow_remote,
        )
        sim.start()
    except (ValueError, OSError) as exc:
        print(f"flowfinity-simulator: error: {exc}", file=sys.stderr)
        return 2
    ready = json.dumps(sim.info())
    if args.ready_file:
        args.ready_file.write_text(ready + "\n")
    print(ready, flush=True)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
