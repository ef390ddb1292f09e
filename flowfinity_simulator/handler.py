"""The HTTP side of the simulator: routing, view responses written incrementally, and faults.

HTTP/1.1 with keep-alive, as a real IIS-hosted site would answer, so every response is framed
(Content-Length, chunked, or Connection: close) and a request body is always read before the
answer, otherwise the next request on the connection would be misparsed.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import socket
import struct
import sys
import time
import typing as t
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from flowfinity_simulator.faults import Fault

if t.TYPE_CHECKING:
    from flowfinity_simulator.service import Simulator
    from flowfinity_simulator.variants import Variants

logger = logging.getLogger("flowfinity-simulator")

CHUNK_BYTES = 64 * 1024
DRIP_CHUNK_BYTES = 256
OPERATIONS = frozenset({"Create", "Update", "Delete", "Restore", "Transition"})
UNAUTHORIZED_HEADERS = {"WWW-Authenticate": 'Basic realm="Flowfinity"'}
BOM = "\ufeff"  # encoded as UTF-8 with the body: EF BB BF


class ConnectionCut(Exception):
    """The response was cut on purpose (a fault): stop writing, the socket is gone."""


class SimulatorServer(ThreadingHTTPServer):
    """Tracks open connections so `stop()` can end keep-alive ones instead of leaking them."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self.connections: set[socket.socket] = set()
        super().__init__(address, handler)

    def handle_error(self, request: t.Any, client_address: t.Any) -> None:
        """A client that hangs up (its timeout, a test's reset) is normal here, not a crash."""
        if isinstance(sys.exc_info()[1], OSError):
            logger.debug("connection from %s ended: %s", client_address, sys.exc_info()[1])
            return
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        for conn in list(self.connections):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class BodyWriter:
    """Writes a response body in chunks: framing, drip delays and a byte budget (a cut)."""

    def __init__(
        self,
        handler: BaseHTTPRequestHandler,
        framing: str,
        chunk_bytes: int,
        chunk_delay: float,
        budget: int | None,
    ) -> None:
        self.handler = handler
        self.framing = framing
        self.chunk_bytes = chunk_bytes
        self.chunk_delay = chunk_delay
        self.budget = budget
        self.pending: list[str] = []
        self.pending_size = 0
        self.chunks_sent = 0

    def add(self, text: str) -> None:
        self.pending.append(text)
        self.pending_size += len(text)
        if self.pending_size >= self.chunk_bytes:
            self._flush_pending()

    def finish(self) -> None:
        self._flush_pending()
        if self.budget is not None:  # a cut asked for more bytes than the body has
            self._cut()
        if self.framing == "chunked":
            self._raw(b"0\r\n\r\n")

    def _flush_pending(self) -> None:
        if not self.pending:
            return
        data = "".join(self.pending).encode()
        self.pending.clear()
        self.pending_size = 0
        for start in range(0, len(data), self.chunk_bytes):
            self._send(data[start : start + self.chunk_bytes])

    def _send(self, data: bytes) -> None:
        if self.chunks_sent and self.chunk_delay:
            time.sleep(self.chunk_delay)
        self.chunks_sent += 1
        cut = False
        if self.budget is not None:
            if len(data) >= self.budget:
                data, cut = data[: self.budget], True
            self.budget -= len(data)
        if data:
            if self.framing == "chunked":
                self._raw(b"%x\r\n%s\r\n" % (len(data), data))
            else:
                self._raw(data)
        if cut:
            self._cut()

    def _raw(self, data: bytes) -> None:
        try:
            self.handler.wfile.write(data)
        except OSError as exc:  # the client went away (its timeout, say)
            raise ConnectionCut from exc

    def _cut(self) -> None:
        """End the connection cleanly (FIN) mid-body, so the client sees a short read."""
        conn = self.handler.connection
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_RDWR)
        self.handler.close_connection = True
        raise ConnectionCut


def abort(conn: socket.socket) -> None:
    """Abort the TCP connection (RST), as a crashed proxy or a network fault would."""
    try:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
    except OSError:
        pass


class Handler(BaseHTTPRequestHandler):
    simulator: Simulator
    server: SimulatorServer
    server_version = "FlowfinitySimulator/1.0"
    protocol_version = "HTTP/1.1"
    timeout = 120  # an idle keep-alive connection must not pin a thread forever
    # TCP_NODELAY, as production web servers set it: with Nagle on, the small writes of a
    # response (headers, chunk frames, the last chunk) wait for the client's delayed ACK,
    # adding up to 40 ms to every answer, a latency no real site shows on loopback.
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        self.server.connections.add(self.connection)

    def finish(self) -> None:
        self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

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
            self._log({"path": parts.path, "status": 404})
            self._send_json(404, {"error": "Not found"})
            return
        self._serve_view(view_key, parts.path, parse_qs(parts.query, keep_blank_values=True))

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        body = self._read_body()
        if parts.path.startswith("/_sim/"):
            self._control("POST", parts.path, body)
            return
        view_key = self._view_at(parts.path)
        if view_key is not None:  # a site whose views answer POST (variants.method)
            self._serve_view(view_key, parts.path, parse_qs(parts.query, keep_blank_values=True))
            return
        for key, app in self.simulator.store.apps.items():
            prefix = app.operations_path + "/"
            if parts.path.startswith(prefix):
                self._operation(key, parts.path, parts.path[len(prefix) :], body)
                return
        self._log({"path": parts.path, "status": 404})
        self._send_json(404, {"error": "Not found"})

    def do_DELETE(self) -> None:
        parts = urlsplit(self.path)
        body = self._read_body()
        if parts.path.startswith("/_sim/"):
            self._control("DELETE", parts.path, body)
            return
        self._send_json(405, {"error": "Method not allowed"})

    def _view_at(self, path: str) -> str | None:
        for key, app in self.simulator.store.apps.items():
            if path.rstrip("/") == app.view_path:
                return key
        return None

    def _log(self, entry: dict[str, t.Any]) -> dict[str, t.Any]:
        entry = {"method": self.command, "time": time.time(), **entry}
        self.simulator.log_request(entry)
        return entry

    # Views

    def _serve_view(self, view_key: str, path: str, query: dict[str, list[str]]) -> None:
        sim = self.simulator
        variants = sim.variants_for(view_key)
        entry = self._log(
            {
                "path": path,
                "query": {k: v[-1] for k, v in query.items()},
                "repeated": sorted(k for k, v in query.items() if len(v) > 1),
                "view": view_key,
                "cursor": None,
                "status": 401,
                "records_sent": 0,
                "faults": [],
            }
        )
        entry["params"] = entry["query"]  # the older name, kept for callers that use it
        if self.command != variants.method:
            entry["status"] = 405
            self._send_json(405, {"error": "Method not allowed"}, {"Allow": variants.method})
            return
        if not variants.accepts_basic():
            self._send_text(401, "Unauthorized", {"WWW-Authenticate": variants.auth_scheme})
            return
        if not sim.check_credentials(self.headers.get("Authorization")):
            self._send_text(401, "Unauthorized", UNAUTHORIZED_HEADERS)
            return
        if variants.strict_params:  # ASP.NET joins a repeated parameter's values
            query = {k: [",".join(v)] for k, v in query.items()}
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
            self.close_connection = True
            abort(self.connection)
            return
        for fault in faults:
            if fault.kind in ("status", "body"):
                entry["status"] = fault.status
                headers = dict(fault.headers)
                if fault.kind == "body" and not _has_header(headers, "Content-Type"):
                    headers["Content-Type"] = fault.content_type
                self._send_bytes(fault.status, fault.body_bytes(), headers)
                return
        if any(f.kind == "ignore_cursor" for f in faults):
            after = None
        unsorted = next((f for f in faults if f.kind == "unsorted"), None)
        cap = sim.response_cap(faults, view_key)
        rows = sim.select(view_key, after, cap, order=unsorted.order if unsorted else None)
        first = next(rows, None)
        if first is None and variants.empty_answer != "array":
            self._send_empty(variants, entry)
            return
        if first is not None:
            rows = itertools.chain([first], rows)
        drop = next((f for f in faults if f.kind == "drop_after_bytes"), None)
        slow = next((f for f in faults if f.kind == "slow" and f.chunk_delay), None)
        framing = drop.framing if drop else sim.framing_for(view_key)
        chunk_bytes = next((f.chunk_bytes for f in faults if f.chunk_bytes > 0), 0)
        if not chunk_bytes:
            chunk_bytes = DRIP_CHUNK_BYTES if slow else CHUNK_BYTES
        entry["status"] = 200
        self.send_response(200)
        self.send_header("Content-Type", variants.content_type)
        for key, value in variants.headers.items():
            self.send_header(key, value)
        pieces = _array_pieces(rows, entry)
        if variants.bom:
            pieces = itertools.chain([BOM], pieces)
        if framing == "length":  # the length is needed up front: render the body first
            body = "".join(pieces)
            pieces = iter([body])
            self.send_header("Content-Length", str(len(body.encode())))
        elif framing == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        writer = BodyWriter(
            self,
            framing,
            chunk_bytes,
            slow.chunk_delay if slow else 0.0,
            drop.after_bytes if drop else None,
        )
        try:
            for piece in pieces:
                writer.add(piece)
            writer.finish()
        except ConnectionCut:
            self.close_connection = True

    def _send_empty(self, variants: Variants, entry: dict[str, t.Any]) -> None:
        """Nothing new, in the site's form: 204, an empty 200 or the JSON literal null."""
        if variants.empty_answer == "no_content":
            entry["status"] = 204
            self.send_response(204)
            for key, value in variants.headers.items():
                self.send_header(key, value)
            self.end_headers()
            return
        body = b"" if variants.empty_answer == "empty" else b"null"
        if body and variants.bom:
            body = BOM.encode() + body
        entry["status"] = 200
        self._send_bytes(200, body, {"Content-Type": variants.content_type, **variants.headers})

    # Operations

    def _operation(self, view_key: str, path: str, operation: str, raw: bytes) -> None:
        sim = self.simulator
        entry = self._log({"path": path, "app": view_key, "operation": operation, "status": 401})
        if not sim.check_credentials(self.headers.get("Authorization")):
            self._send_text(401, "Unauthorized", UNAUTHORIZED_HEADERS)
            return
        status, payload = self._apply_operation(view_key, operation, raw)
        entry["status"] = status
        if isinstance(payload, dict):
            entry["transaction"] = payload.get("_transaction")
            payload.pop("_transaction", None)
        self._send_json(status, payload)

    def _apply_operation(self, view_key: str, operation: str, raw: bytes) -> tuple[int, t.Any]:
        sim = self.simulator
        if operation not in OPERATIONS:
            return 404, {"error": f"no operation {operation!r}; operations: {sorted(OPERATIONS)}"}
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            return 400, {"error": "the body is not JSON"}
        if not isinstance(payload, dict) or "ExternalTransactionId" not in payload:
            return 400, {"error": "expected a JSON object with ExternalTransactionId"}
        fields = {
            k: v for k, v in payload.items() if k not in {"RecordID", "ExternalTransactionId"}
        }
        record_id = payload.get("RecordID")
        if (operation == "Create") != (record_id is None):
            return 400, {"error": "RecordID must be null for Create, and given otherwise"}
        if operation == "Transition" and not fields.get("State"):
            return 400, {"error": "Transition needs a State"}

        def apply() -> dict[str, t.Any]:
            if operation == "Create":
                return sim.create(view_key, fields)
            rid = str(record_id)
            if operation == "Delete":
                return sim.delete(view_key, rid)
            if operation == "Restore":
                return sim.restore(view_key, rid)
            return sim.update(view_key, rid, fields)  # Update; Transition (State in fields)

        try:
            result, fresh = sim.store.remember_transaction(
                str(payload["ExternalTransactionId"]), apply
            )
        except KeyError as exc:
            return 404, {"error": str(exc.args[0])}
        return 200, {**result, "_transaction": "applied" if fresh else "repeated"}

    # Control API (documented in service.py)

    def _control(self, method: str, path: str, raw: bytes = b"") -> None:
        sim = self.simulator
        parts = [unquote(p) for p in path.split("/") if p][1:]
        try:
            body = json.loads(raw) if raw.strip() else None
            status, payload = 200, self._control_call(sim, method, parts, body)
        except LookupError as exc:
            status, payload = 404, {"error": str(exc.args[0] if exc.args else exc)}
        except (ValueError, TypeError) as exc:
            status, payload = 400, {"error": str(exc)}
        if payload is _NOT_FOUND:
            status, payload = 404, {"error": f"no control endpoint {method} {path}"}
        self._send_json(status, payload)

    @staticmethod
    def _control_call(sim: Simulator, method: str, parts: list[str], body: t.Any) -> t.Any:
        fields = body if isinstance(body, dict) else {}
        match method, parts:
            case "GET", ["info"]:
                return sim.info()
            case "GET", ["truth", view]:
                return sim.truth(view)
            case "GET", ["gone", view]:
                return sim.gone(view)
            case "GET", ["requests"]:
                return sim.requests
            case "DELETE", ["requests"]:
                sim.clear_request_log()
                return {"cleared": True}
            case "GET", ["faults"]:
                return [f.to_json() for f in sim.faults.pending()]
            case "POST", ["faults"]:
                items = body if isinstance(body, list) else [body]
                sim.faults.add(*(Fault.from_json(item) for item in items))
                return [f.to_json() for f in sim.faults.pending()]
            case "DELETE", ["faults"]:
                sim.faults.clear()
                return []
            case "POST", ["reset"]:
                sim.reset()
                return sim.info()
            case "POST", ["advance"]:
                return {"counter": sim.advance_counter(int(fields["by"]))}
            case "POST", ["views", view, "records"]:
                return sim.create(view, fields)
            case "POST", ["views", view, "records", record_id]:
                return sim.update(view, record_id, fields)
            case "POST", ["views", view, "records", record_id, "delete"]:
                return sim.delete(view, record_id)
            case "POST", ["views", view, "records", record_id, "restore"]:
                return sim.restore(view, record_id)
            case "POST", ["views", view, "records", record_id, "state"]:
                return sim.set_state(view, record_id, str(fields["State"]))
            case "POST", ["views", view, "records", record_id, "purge"]:
                return sim.purge(view, record_id)
            case "POST", ["views", view, "records", record_id, "leave"]:
                return sim.leave(view, record_id, fields)
            case "POST", ["views", view, "records", record_id, "enter"]:
                return sim.enter(view, record_id, fields)
            case "POST", ["views", view, "holds"]:
                fields = dict(fields)
                record_id = fields.pop("RecordID", None)
                reads = fields.pop("_reads", None)
                ids = fields.pop("_ids", None)
                return sim.hold(view, fields, record_id=record_id, reads=reads, ids=ids).to_json()
            case "GET", ["variants"]:
                return sim.variants.to_json()
            case "POST", ["variants"]:
                sim.variants = sim.variants.updated(fields)
                return sim.variants.to_json()
            case "POST", ["views", view, "transaction"]:
                return sim.create_together(view, list(fields.get("records") or []))
            case "GET", ["holds"]:
                return [h.to_json() for h in sim.store.held()]
            case "POST", ["holds", handle, "release"]:
                held = sim.store.held(int(handle))
                if not held:
                    raise LookupError(f"no pending hold {handle}")
                return held[0].release()
        return _NOT_FOUND

    # Plumbing

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send_json(
        self, status: int, payload: t.Any, headers: dict[str, str] | None = None
    ) -> None:
        headers = {"Content-Type": "application/json", **(headers or {})}
        self._send_bytes(status, json.dumps(payload).encode(), headers)

    def _send_text(self, status: int, body: str, headers: dict[str, str]) -> None:
        self._send_bytes(status, body.encode(), headers)

    def _send_bytes(self, status: int, data: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        if not _has_header(headers, "Content-Type"):
            self.send_header("Content-Type", "text/plain; charset=utf-8")
        for key, value in headers.items():
            self.send_header(key, value)
        if not _has_header(headers, "Content-Length"):
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except OSError:
            self.close_connection = True


_NOT_FOUND = object()


def _array_pieces(rows: t.Iterable[str], entry: dict[str, t.Any]) -> t.Iterator[str]:
    """The JSON array's text, record by record.

    The log entry counts the records as they are rendered, so the count is final before the
    closing bracket goes out: a client that has read the whole array sees the whole count.
    """
    yield "["
    for sent, row in enumerate(rows, start=1):
        if sent > 1:
            yield ","
        yield row
        entry["records_sent"] = sent
    yield "]"


def _has_header(headers: dict[str, str], name: str) -> bool:
    return any(k.lower() == name.lower() for k in headers)
