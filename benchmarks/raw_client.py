"""The practical limit: GET the view, parse it incrementally, write Singer RECORD lines.

No SDK, no schema, no retries: requests (streamed) + ijson (yajl2_c) + msgspec, with a STATE
line every 1000 records, which is the least a Singer tap does. `--csv` writes the rows as CSV
instead (objects as JSON), for the raw `COPY` baseline. `--parser tap` parses with the tap's
own incremental parser (tap_flowfinity/parsing.py) instead of ijson, to show the tap's
overhead beyond parsing.

    raw_client.py URL USER PASSWORD [--csv] [--parser ijson|tap] > out
"""

from __future__ import annotations

import argparse
import csv
import sys

import ijson
import msgspec
import requests

CURSOR = "lastSubmissionId"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("username")
    parser.add_argument("password")
    parser.add_argument("--csv", action="store_true")
    parser.add_argument("--columns", default="")
    parser.add_argument("--parser", choices=["ijson", "tap"], default="ijson")
    args = parser.parse_args()
    encode = msgspec.json.Encoder(decimal_format="number").encode
    # Its own block buffer: stdout may be unbuffered (PYTHONUNBUFFERED), as the tap's is.
    out = open(sys.stdout.fileno(), "wb", buffering=1 << 16, closefd=False)  # noqa: SIM115
    with requests.get(args.url, auth=(args.username, args.password), stream=True) as response:
        response.raise_for_status()
        if args.parser == "tap":
            from tap_flowfinity.parsing import iter_records

            records = iter_records(response, "leads")
        else:
            body = response.raw
            body.decode_content = True
            records = ijson.items(body, "item")
        if args.csv:
            columns = args.columns.split(",")
            text = open(out.fileno(), "w", newline="", closefd=False, buffering=1 << 16)  # noqa: SIM115
            writer = csv.writer(text)
            for record in records:
                writer.writerow(
                    [
                        encode(v).decode() if isinstance(v, (dict, list)) else v
                        for v in (record.get(c) for c in columns)
                    ]
                )
            text.flush()
            return 0
        last = None
        for count, record in enumerate(records, 1):
            last = record[CURSOR] = int(record[CURSOR])
            out.write(b'{"type":"RECORD","stream":"leads","record":' + encode(record) + b"}\n")
            if count % 1000 == 0:
                out.write(encode({"type": "STATE", "value": {"bookmarks": {"leads": last}}}))
                out.write(b"\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
