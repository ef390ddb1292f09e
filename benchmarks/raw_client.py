"""The practical limit: GET the view, parse it incrementally, write Singer RECORD lines.

No SDK, no schema, no retries: requests (streamed) + ijson (yajl2_c) + msgspec, with a STATE
line every 1000 records, which is the least a Singer tap does. `--csv` writes the rows as CSV
instead (objects as JSON), for the raw `COPY` baseline.

    raw_client.py URL USER PASSWORD [--csv] > out
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
    args = parser.parse_args()
    encode = msgspec.json.Encoder(decimal_format="number").encode
    out = sys.stdout.buffer
    with requests.get(args.url, auth=(args.username, args.password), stream=True) as response:
        response.raise_for_status()
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
