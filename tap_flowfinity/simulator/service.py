"""The simulator's HTTP server: Flowfinity's view and operation endpoints, plus a control API.

Views: GET at an opaque per-view URL, HTTP Basic auth (401 otherwise), the
`PreviousLastSubmissionId` filter ("greater than", numerically; everything when empty or
absent), ascending by `lastSubmissionId`, a JSON array of flat records.

Operations: POST `<app>/operations/<Create|Update|Delete|Restore|Transition>` with a JSON
object holding `RecordID` (null to create), `ExternalTransactionId` and field values; a
repeated ExternalTransactionId is answered 200 and ignored.

Control API (no auth; loopback tooling for tests and the demo):
- GET  /_sim/info                               base URL, view and operation URLs
- GET  /_sim/truth/<view>                       every record at its latest version
- GET  /_sim/requests, DELETE /_sim/requests    the request log
- POST /_sim/faults (object or list), DELETE /_sim/faults   see faults.py
- POST /_sim/views/<view>/records               create (body: fields)
- POST /_sim/views/<view>/records/<id>          update (body: fields)
- POST /_sim/views/<view>/records/<id>/delete   transition to Deleted (…/restore: back to Open)
- POST /_sim/advance                            {"by": n}: other apps' submissions
"""

from __future__ import annotations

import base64
import hmac
import itertools
import json
import logging
import socket
import struct
import threading
import time
import typing as t
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from tap_flowfinity.simulator.demo import load_demo
from tap_flowfinity.simulator.faults import Fault, FaultBook
from tap_flowfinity.simulator.records import Held, Store
from tap_flowfinity.simulator.synthetic import SyntheticRecords

logger = logging.getLogger("flowfinity-simulator")

CHUNK_BYTES = 64 * 1024
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


class Simulator:
    """A running simulated Flowfinity site: start it, point the tap at `view_url(key)`."""

    def __init__(
        self,
        username: str = "integration",
        password: str = "dev-simulator-password",
        host: str = "127.0.0.1",
        port: int = 0,
        demo_records: int = 25,
        seed: int = 1,
        synthetic: int = 0,
        max_records_per_response: int = 0,
        cursor_parameter: str = "PreviousLastSubmissionId",
        allow_remote: bool = False,
    ) -> None:
        if host not in LOOPBACK_HOSTS and not allow_remote:
            raise ValueError(f"refusing to bind {host!r}: the simulator serves loopback only")
        self.username = username
        self._password = password
        self.host = host
        self.port = port
        self.cursor_parameter = cursor_parameter
        self.max_records_per_response = max_records_per_response
        self.store = Store()
        self.faults = FaultBook()
        self.requests: deque[dict[str, t.Any]] = deque(maxlen=100_000)
        load_demo(self.store, records_per_app=demo_records, seed=seed)
        if synthetic:
            leads = self.store.app("leads")
            leads.records.clear()
            first = self.store.counter + 1
            leads.synthetic = SyntheticRecords(synthetic, first_id=first)
            leads.next_record_number = synthetic
            self.store.advance_counter(synthetic)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # Lifecycle

    def start(self) -> Simulator:
        handler = type("BoundHandler", (_Handler,), {"simulator": self})
        self._server = ThreadingHTTPServer((self.host, self.port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # Addresses

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def view_keys(self) -> list[str]:
        return list(self.store.apps)

    def view_url(self, view_key: str) -> str:
        return self.base_url + self.store.app(view_key).view_path

    def operation_url(self, view_key: str, operation: str) -> str:
        return f"{self.base_url}{self.store.app(view_key).operations_path}/{operation}"

    def info(self) -> dict[str, t.Any]:
        return {
            "base_url": self.base_url,
            "views": {key: self.view_url(key) for key in self.view_keys()},
            "operations": {
                key: self.base_url + self.store.app(key).operations_path for key in self.view_keys()
            },
        }

    def check_credentials(self, header: str | None) -> bool:
        expected = "Basic " + base64.b64encode(f"{self.username}:{self._password}".encode()).decode(
            "ascii"
        )
        return hmac.compare_digest((header or "").encode(), expected.encode())

    # Data (shortcuts to the store, by view key)

    def create(self, view_key: str, fields: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        return t.cast(dict, self.store.create(view_key, fields))

    def update(self, view_key: str, record_id: str, fields: dict[str, t.Any]) -> dict[str, t.Any]:
        return t.cast(dict, self.store.update(view_key, record_id, fields))

    def set_state(self, view_key: str, record_id: str, state: str) -> dict[str, t.Any]:
        return self.store.set_state(view_key, record_id, state)

    def delete(self, view_key: str, record_id: str) -> dict[str, t.Any]:
        return self.store.delete(view_key, record_id)

    def restore(self, view_key: str, record_id: str) -> dict[str, t.Any]:
        return self.store.restore(view_key, record_id)

    def hold(self, view_key: str, fields: dict[str, t.Any] | None = None) -> Held:
        """Start a slow submission: its id is taken now, it is visible after `.release()`."""
        return t.cast(Held, self.store.create(view_key, fields, hold=True))

    def advance_counter(self, by: int) -> int:
        return self.store.advance_counter(by)

    def truth(self, view_key: str) -> dict[str, dict[str, t.Any]]:
        return self.store.truth(view_key)

    # Request log

    def clear_request_log(self) -> None:
        self.requests.clear()

    def view_requests(self, view_key: str) -> list[dict[str, t.Any]]:
        return [r for r in list(self.requests) if r.get("view") == view_key]

    def cursor_requests(self, view_key: str) -> list[int | None]:
        """The cursor each request to the view asked from (None: no parameter)."""
        return [r["cursor"] for r in self.view_requests(view_key)]

    def records_sent(self, view_key: str) -> int:
        return sum(r["records_sent"] for r in self.view_requests(view_key))

    # Serving a view

    def response_cap(self, faults: list[Fault]) -> int:
        """Records per response: a `cap` fault's, else the site-wide cap (0: no cap)."""
        caps = [f.cap for f in faults if f.kind == "cap" and f.cap > 0]
        return min(caps) if caps else self.max_records_per_response

    def select(
        self, view_key: str, after: int | None, cap: int, *, descending: bool
    ) -> t.Iterator[bytes]:
        """The JSON text of each record a request gets, in the order the view sends them.

        A synthetic history is rendered lazily (it may hold millions of records); records
        written since are served after it, their ids being larger.
        """
        app = self.store.app(view_key)
        written = self.store.visible_after(view_key, None)
        newer = (r for r in written if after is None or int(r["lastSubmissionId"]) > after)
        rows: t.Iterator[bytes] = (json.dumps(row, ensure_ascii=False).encode() for row in newer)
        if app.synthetic is not None:
            skip = {row["RecordID"] for row in written}
            history = (text.encode() for _, text in app.synthetic.render_from(after, skip))
            rows = itertools.chain(history, rows)
        if descending:
            rows = iter(list(rows)[::-1])
        return itertools.islice(rows, cap) if cap else rows


class _Handler(BaseHTTPRequestHandler):
    simulator: Simulator
    server_version = "FlowfinitySimulator/1.0"

    def log_message(self, format: str, *args: t.Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)

    # Routing

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path.startswith("/_sim/"):
            self._control("GET", parts.path)
            return
        view_key = self._view_at(parts.path)
        if view_key is None:
            self._send_json(404, {"error": "Not found"})
            return
        self._serve_view(view_key, parse_qs(parts.query, keep_blank_values=True))

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        if parts.path.startswith("/_sim/"):
            self._control("POST", parts.path)
            return
        for key, app in self.simulator.store.apps.items():
            prefix = app.operations_path + "/"
            if parts.path.startswith(prefix):
                self._operation(key, parts.path[len(prefix) :])
                return
        self._send_json(404, {"error": "Not found"})

    def do_DELETE(self) -> None:
        self._control("DELETE", urlsplit(self.path).path)

    def _view_at(self, path: str) -> str | None:
        for key, app in self.simulator.store.apps.items():
            if path.rstrip("/") == app.view_path:
                return key
        return None

    # Views

    def _serve_view(self, view_key: str, query: dict[str, list[str]]) -> None:
        sim = self.simulator
        entry: dict[str, t.Any] = {
            "method": "GET",
            "view": view_key,
            "params": {k: v[-1] for k, v in query.items()},
            "cursor": None,
            "status": 401,
            "records_sent": 0,
        }
        sim.requests.append(entry)
        if not sim.check_credentials(self.headers.get("Authorization")):
            self._send_text(401, "Unauthorized", {"WWW-Authenticate": 'Basic realm="Flowfinity"'})
            return
        raw_cursor = (query.get(sim.cursor_parameter) or [""])[-1].strip()
        if raw_cursor and not raw_cursor.isdigit():
            entry["status"] = 400
            self._send_json(400, {"error": f"{sim.cursor_parameter} must be numeric"})
            return
        after = int(raw_cursor) if raw_cursor else None
        entry["cursor"] = after
        faults = sim.faults.take(view_key)
        entry["faults"] = [f.kind for f in faults]
        for fault in faults:
            if fault.kind == "slow" and fault.delay:
                time.sleep(fault.delay)
        if any(f.kind == "reset" for f in faults):
            entry["status"] = 0
            self._reset_connection()
            return
        for fault in faults:
            if fault.kind == "status":
                entry["status"] = fault.status
                self._send_text(fault.status, fault.body or "", fault.headers)
                return
            if fault.kind == "body":
                entry["status"] = 200
                self._send_text(200, fault.body or "", {"Content-Type": "application/json"})
                return
        if any(f.kind == "ignore_cursor" for f in faults):
            after = None
        chunk_delay = max((f.chunk_delay for f in faults if f.kind == "slow"), default=0.0)
        drop = next((f for f in faults if f.kind == "drop_after_bytes"), None)
        rows = sim.select(
            view_key,
            after,
            sim.response_cap(faults),
            descending=any(f.kind == "unsorted" for f in faults),
        )
        entry["status"] = 200
        if sim.store.app(view_key).synthetic is not None:
            entry["records_sent"] = self._stream_array(rows, chunk_delay, drop)
            return
        materialized = list(rows)
        entry["records_sent"] = len(materialized)
        self._send_body(b"[" + b",".join(materialized) + b"]", chunk_delay, drop)

    def _send_body(self, body: bytes, chunk_delay: float, drop: Fault | None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        if drop is None or drop.content_length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        limit = len(body) if drop is None else min(drop.after_bytes, len(body))
        for start in range(0, limit, CHUNK_BYTES):
            self.wfile.write(body[start : min(start + CHUNK_BYTES, limit)])
            self.wfile.flush()
            if chunk_delay:
                time.sleep(chunk_delay)
        if drop is not None:
            self._reset_connection()

    def _stream_array(self, rows: t.Iterator[bytes], chunk_delay: float, drop: Fault | None) -> int:
        """Write a (possibly huge) array as it is generated; the end of the body is EOF."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Connection", "close")
        self.end_headers()
        budget = None if drop is None else drop.after_bytes
        sent = 0
        buffer = bytearray(b"[")
        for row in rows:
            if sent:
                buffer += b","
            buffer += row
            sent += 1
            if len(buffer) >= CHUNK_BYTES:
                budget = self._write_limited(bytes(buffer), budget)
                buffer.clear()
                if budget == 0:
                    self._reset_connection()
                    return sent
                if chunk_delay:
                    time.sleep(chunk_delay)
        buffer += b"]"
        budget = self._write_limited(bytes(buffer), budget)
        if budget == 0:
            self._reset_connection()
        self.close_connection = True
        return sent

    def _write_limited(self, data: bytes, budget: int | None) -> int | None:
        if budget is not None:
            data = data[:budget]
            budget -= len(data)
        self.wfile.write(data)
        self.wfile.flush()
        return budget

    def _reset_connection(self) -> None:
        """Abort the TCP connection (RST), as a crashed proxy or a network fault would."""
        self.wfile.flush()
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    # Operations

    def _operation(self, view_key: str, operation: str) -> None:
        sim = self.simulator
        if not sim.check_credentials(self.headers.get("Authorization")):
            self._send_text(401, "Unauthorized", {"WWW-Authenticate": 'Basic realm="Flowfinity"'})
            return
        payload = self._json_body()
        if not isinstance(payload, dict) or "ExternalTransactionId" not in payload:
            self._send_json(400, {"error": "expected a JSON object with ExternalTransactionId"})
            return
        fields = {
            k: v for k, v in payload.items() if k not in {"RecordID", "ExternalTransactionId"}
        }
        record_id = payload.get("RecordID")

        def apply() -> dict[str, t.Any]:
            if operation == "Create":
                return sim.create(view_key, fields)
            if record_id is None:
                raise KeyError("RecordID is required")
            if operation == "Update":
                return sim.update(view_key, record_id, fields)
            if operation == "Delete":
                return sim.delete(view_key, record_id)
            if operation == "Restore":
                return sim.restore(view_key, record_id)
            if operation == "Transition":
                return sim.set_state(view_key, record_id, str(fields.get("State")))
            raise KeyError(f"no operation {operation!r}")

        try:
            result, _ = sim.store.remember_transaction(str(payload["ExternalTransactionId"]), apply)
        except KeyError as exc:
            self._send_json(404, {"error": str(exc.args[0])})
            return
        self._send_json(200, result)

    # Control API

    def _control(self, method: str, path: str) -> None:
        sim = self.simulator
        parts = [p for p in path.split("/") if p][1:]
        try:
            if method == "GET" and parts == ["info"]:
                self._send_json(200, sim.info())
            elif method == "GET" and len(parts) == 2 and parts[0] == "truth":
                self._send_json(200, sim.truth(parts[1]))
            elif parts == ["requests"] and method == "GET":
                self._send_json(200, list(sim.requests))
            elif parts == ["requests"] and method == "DELETE":
                sim.clear_request_log()
                self._send_json(200, {"cleared": True})
            elif parts == ["faults"] and method == "POST":
                body = self._json_body()
                items = body if isinstance(body, list) else [body]
                sim.faults.add(*(Fault.from_json(item) for item in items))
                self._send_json(200, [f.to_json() for f in sim.faults.pending()])
            elif parts == ["faults"] and method == "DELETE":
                sim.faults.clear()
                self._send_json(200, [])
            elif parts == ["advance"] and method == "POST":
                self._send_json(200, {"counter": sim.advance_counter(int(self._json_body()["by"]))})
            elif method == "POST" and len(parts) == 3 and parts[::2] == ["views", "records"]:
                self._send_json(200, sim.create(parts[1], self._json_body() or {}))
            elif method == "POST" and len(parts) == 4 and parts[0] == "views":
                self._send_json(200, sim.update(parts[1], parts[3], self._json_body() or {}))
            elif method == "POST" and len(parts) == 5 and parts[4] in {"delete", "restore"}:
                action = sim.delete if parts[4] == "delete" else sim.restore
                self._send_json(200, action(parts[1], parts[3]))
            else:
                self._send_json(404, {"error": f"no control endpoint {method} {path}"})
        except (KeyError, ValueError, TypeError) as exc:
            self._send_json(400, {"error": str(exc)})

    # Plumbing

    def _json_body(self) -> t.Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw else None

    def _send_json(self, status: int, payload: t.Any) -> None:
        self._send_text(status, json.dumps(payload), {"Content-Type": "application/json"})

    def _send_text(self, status: int, body: str, headers: dict[str, str]) -> None:
        data = body.encode()
        self.send_response(status)
        if not any(k.lower() == "content-type" for k in headers):
            self.send_header("Content-Type", "text/plain; charset=utf-8")
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
