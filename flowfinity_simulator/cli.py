"""`flowfinity-simulator`: run the simulated Flowfinity site as a process (demo, benchmarks).

Prints one JSON line when ready ({"base_url", "views", "operations"}), also written to
--ready-file, and serves until SIGTERM or Ctrl-C. The password comes from
FLOWFINITY_SIM_PASSWORD or --password and is never printed. The endpoints, including the
control API under /_sim/, are documented in flowfinity_simulator/service.py.

The commands change a running simulator (--url, its base_url) the way the change feed cannot
show: `purge VIEW RECORDID` removes a record physically (no submission id is taken),
`leave VIEW RECORDID` moves it out of the view's filter and `enter VIEW RECORDID` brings it back
(each an update taking an id; --fields sets fields too), and `gone VIEW` lists the RecordIDs the
view no longer shows. Each prints the control API's JSON answer.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import typing as t
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

from flowfinity_simulator.replay import Capture
from flowfinity_simulator.service import LOOPBACK_HOSTS, Simulator
from flowfinity_simulator.variants import (
    DEFAULT_CURSOR_KEY,
    DEFAULT_STATE_KEY,
    DELETE_OPERATIONS,
    EMPTY_ANSWERS,
    METHODS,
    Variants,
)

DEFAULT_PASSWORD = "dev-simulator-password"  # meltano.yml's dev environment uses it
DEFAULT_URL = "http://127.0.0.1:8765"  # where the simulator serves by default
COMMANDS = {
    "purge": "remove a record physically: never in the view again, no submission id taken",
    "leave": "an update moving a record out of the view's filter (it disappears from the view)",
    "enter": "an update bringing a record back into the view's filter, with a new id",
    "gone": "the RecordIDs the view no longer shows (purged, or out of its filter)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flowfinity-simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="bind address (loopback by default)")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--username", default="integration")
    parser.add_argument(
        "--password",
        default=None,
        help=f"else $FLOWFINITY_SIM_PASSWORD, else {DEFAULT_PASSWORD!r}",
    )
    parser.add_argument("--demo-records", type=int, default=25, help="demo records per app")
    parser.add_argument(
        "--extra-apps", type=int, default=0, help="more demo apps (app03, ...): many views"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--synthetic", type=int, default=0, help="serve N generated leads")
    parser.add_argument("--max-records-per-response", type=int, default=0, help="0: no cap")
    parser.add_argument(
        "--framing",
        choices=["auto", "length", "chunked", "close"],
        default="auto",
        help="how view responses are delimited",
    )
    parser.add_argument("--cursor-parameter", default="PreviousLastSubmissionId")
    variants = parser.add_argument_group(
        "variants", "how the site differs from the documented defaults (variants.py)"
    )
    variants.add_argument("--cursor-key", default=DEFAULT_CURSOR_KEY, help="e.g. lastSubmissionID")
    variants.add_argument("--state-key", default=DEFAULT_STATE_KEY)
    variants.add_argument(
        "--records-per-submission", type=int, default=1, help="records sharing one id"
    )
    variants.add_argument("--empty-answer", choices=sorted(EMPTY_ANSWERS), default="array")
    variants.add_argument("--bom", action="store_true", help="UTF-8 byte-order mark first")
    variants.add_argument(
        "--strict-params", action="store_true", help="a repeated parameter is joined: a,b"
    )
    variants.add_argument("--auth-scheme", default="Basic", help="e.g. NTLM, Negotiate")
    variants.add_argument("--method", choices=sorted(METHODS), default="GET")
    variants.add_argument(
        "--delete-operation",
        choices=sorted(DELETE_OPERATIONS),
        default="state",
        help="what Delete does: a transition to Deleted, or a physical removal",
    )
    parser.add_argument(
        "--replay",
        type=Path,
        default=None,
        help="serve the views of a capture file (tap-flowfinity --capture) instead of the demo",
    )
    parser.add_argument("--ready-file", type=Path, default=None)
    parser.add_argument(
        "--allow-remote", action="store_true", help="allow a non-loopback --host (no TLS!)"
    )
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", title="commands for a running simulator"
    )
    for name, summary in COMMANDS.items():
        command = commands.add_parser(name, help=summary, description=summary)
        command.add_argument("--url", default=DEFAULT_URL, help="the simulator's base_url")
        command.add_argument("--timeout", type=float, default=10.0, help="seconds")
        command.add_argument("view", metavar="VIEW", help="the view's key (see the ready line)")
        if name == "gone":
            continue
        command.add_argument("record_id", metavar="RECORDID")
        if name != "purge":
            command.add_argument(
                "--fields",
                type=_json_object,
                default=None,
                help='fields the update also sets, as a JSON object, e.g. {"Region": "East"}',
            )
    return parser


def _json_object(text: str) -> dict[str, t.Any]:
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError('expected a JSON object, e.g. {"Region": "East"}')
    return value


def run_command(args: argparse.Namespace) -> int:
    """One control API call to a running simulator; its JSON answer goes to stdout."""
    base = args.url.rstrip("/")
    view = quote(args.view, safe="")
    if args.command == "gone":
        request = urllib.request.Request(f"{base}/_sim/gone/{view}")
    else:
        record_id = quote(args.record_id, safe="")
        body = json.dumps(getattr(args, "fields", None) or {}).encode()
        request = urllib.request.Request(
            f"{base}/_sim/views/{view}/records/{record_id}/{args.command}",
            data=body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
    prefix = f"flowfinity-simulator {args.command}: error:"
    try:
        with urllib.request.urlopen(request, timeout=args.timeout) as response:
            answer = response.read().decode()
    except urllib.error.HTTPError as exc:
        print(f"{prefix} {_error_of(exc.read())} (HTTP {exc.code})", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        print(f"{prefix} cannot reach a simulator at {base}: {reason}", file=sys.stderr)
        return 1
    print(answer, flush=True)
    return 0


def _error_of(body: bytes) -> str:
    """The control API's {"error": ...} text, else the body as it came."""
    try:
        return str(json.loads(body)["error"])
    except (ValueError, KeyError, TypeError):
        return body.decode(errors="replace").strip() or "no answer"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command:
        return run_command(args)
    password = args.password or os.environ.get("FLOWFINITY_SIM_PASSWORD") or DEFAULT_PASSWORD
    if args.host not in LOOPBACK_HOSTS and args.allow_remote:
        print(
            f"flowfinity-simulator: WARNING: serving on {args.host}, beyond this machine, "
            "over plain HTTP, with an unauthenticated control API",
            file=sys.stderr,
        )
    try:
        site = Variants(
            cursor_key=args.cursor_key,
            state_key=args.state_key,
            records_per_submission=args.records_per_submission,
            empty_answer=args.empty_answer,
            bom=args.bom,
            strict_params=args.strict_params,
            auth_scheme=args.auth_scheme,
            method=args.method,
            delete_operation=args.delete_operation,
        )
        replay = Capture.load(args.replay) if args.replay else None
        sim = Simulator(
            username=args.username,
            password=password,
            host=args.host,
            port=args.port,
            demo_records=args.demo_records,
            extra_apps=args.extra_apps,
            seed=args.seed,
            synthetic=args.synthetic,
            max_records_per_response=args.max_records_per_response,
            cursor_parameter=args.cursor_parameter,
            allow_remote=args.allow_remote,
            framing=args.framing,
            variants=site,
            replay=replay,
        )
        sim.start()
    except (ValueError, OSError) as exc:
        print(f"flowfinity-simulator: error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    ready = json.dumps(sim.info())
    if args.ready_file:
        # Written whole then renamed, so a poller never reads half a line.
        partial = args.ready_file.with_name(args.ready_file.name + ".tmp")
        partial.write_text(ready + "\n")
        partial.replace(args.ready_file)
    print(ready, flush=True)
    while not stop.wait(0.5):  # a timed wait keeps signal handling prompt on every platform
        pass
    sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
