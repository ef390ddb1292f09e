"""The simulated Flowfinity site: views, operations and a control API over real HTTP.

Views: GET at an opaque per-view URL, HTTP Basic auth (401 with `WWW-Authenticate: Basic`
otherwise), the `PreviousLastSubmissionId` filter ("greater than", numerically; everything when
empty or absent; a non-numeric value is a 400), ascending by `lastSubmissionId`, a JSON array
of flat records written to the socket as it is rendered. Unknown query parameters are ignored.

Operations: POST `<app>/operations/<Create|Update|Delete|Restore|Transition>` with a JSON
object holding `RecordID` (null to create, required otherwise), `ExternalTransactionId` and
field values (`State` for Transition); the answer is the resulting record (for a Delete that
purges, see the delete_operation variant, the record as it was removed). A repeated
ExternalTransactionId is answered 200 with the first result and changes nothing.

Control API (no auth: loopback tooling for tests and the demo; JSON in, JSON out):
- GET  /_sim/info                                   base URL, view and operation URLs
- POST /_sim/reset                                  demo data, counter, faults and log anew
- GET  /_sim/truth/<view>                           every record the view shows now, latest
                                                    version, by id
- GET  /_sim/gone/<view>                            the RecordIDs the view no longer shows
                                                    (purged, or out of its filter), sorted
- GET  /_sim/requests, DELETE /_sim/requests        the request log
- GET  /_sim/faults, POST /_sim/faults (one object or a list), DELETE /_sim/faults  (faults.py)
- POST /_sim/advance                                {"by": n}: other apps' submissions
- POST /_sim/views/<view>/records                   create (body: fields)
- POST /_sim/views/<view>/records/<id>              update (body: fields)
- POST /_sim/views/<view>/records/<id>/delete       a user's delete: transition to Deleted, or
                                                    a purge with the variant delete_operation
                                                    "purge" (…/restore: to Open)
- POST /_sim/views/<view>/records/<id>/state        {"State": name}
- POST /_sim/views/<view>/records/<id>/purge        remove physically: never in the view again,
                                                    takes no id; answers the record as it was
- POST /_sim/views/<view>/records/<id>/leave        an update (body: optional fields) that moves
                                                    the record out of the view's filter: it takes
                                                    an id, but the view no longer shows the record
                                                    (nor later updates of it) until …/enter, an
                                                    update that brings it back with a new id
- POST /_sim/views/<view>/holds                     a held submission (body: fields, optional
                                                    "RecordID" to hold an update, "_reads": n to
                                                    release after n view reads, "_ids": n to
                                                    release once the site-wide counter is n past
                                                    the hold's own id; whichever comes first)
                                                    -> {"hold": h, "reads_left", "ids_left", ...}
- GET  /_sim/holds, POST /_sim/holds/<h>/release    pending held submissions; release one
- GET  /_sim/variants, POST /_sim/variants          how the site differs (variants.py); POST
                                                    switches the keys given
- POST /_sim/views/<view>/transaction               {"records": [fields, ...]}: created
                                                    together, sharing one submission id

Unknown views and records (a purged one included) are a 404 with {"error": ...}; a leave of a
record already outside, an enter of one not outside, and a bad body are a 400. The same calls
are `Simulator` methods (purge, leave, enter, gone, hold(..., ids=n)), and purge, leave, enter
and gone are `flowfinity-simulator` subcommands for a running simulator (cli.py).

Variants (variants.py) switch the points Flowfinity's documentation leaves open: key casing,
equal submission ids, the empty answer, a byte-order mark, strict query parameters, the auth
scheme, the HTTP method, and whether the Delete operation purges. Replay mode (replay.py)
serves a capture of a real site's views instead of the demo apps.
"""

from __future__ import annotations

import base64
import hmac
import itertools
import json
import logging
import threading
import typing as t
from collections import deque

import msgspec

from flowfinity_simulator.demo import load_demo
from flowfinity_simulator.faults import Fault, FaultBook
from flowfinity_simulator.handler import Handler, SimulatorServer
from flowfinity_simulator.records import Held, Record, Store
from flowfinity_simulator.synthetic import SyntheticRecords
from flowfinity_simulator.variants import Variants

if t.TYPE_CHECKING:
    from flowfinity_simulator.replay import Capture

logger = logging.getLogger("flowfinity-simulator")

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
FRAMINGS = {"auto", "length", "chunked", "close"}


class Simulator:
    """A running simulated Flowfinity site: start it, point the tap at `view_url(key)`."""

    def __init__(
        self,
        username: str = "integration",
        password: str = "dev-simulator-password",
        host: str = "127.0.0.1",
        port: int = 0,
        demo_records: int = 25,
        extra_apps: int = 0,
        seed: int = 1,
        synthetic: int = 0,
        max_records_per_response: int = 0,
        cursor_parameter: str = "PreviousLastSubmissionId",
        allow_remote: bool = False,
        framing: str = "auto",
        request_log_size: int = 100_000,
        variants: Variants | None = None,
        replay: Capture | None = None,
    ) -> None:
        if host not in LOOPBACK_HOSTS and not allow_remote:
            raise ValueError(f"refusing to bind {host!r}: the simulator serves loopback only")
        if framing not in FRAMINGS:
            raise ValueError(f"framing must be one of {sorted(FRAMINGS)}")
        self.username = username
        self._password = password
        self.host = host
        self.port = port
        self.demo_records = demo_records
        self.extra_apps = extra_apps
        self.seed = seed
        self.synthetic = synthetic
        self.cursor_parameter = cursor_parameter
        self.max_records_per_response = max_records_per_response
        self.framing = framing
        self.variants = variants or Variants()
        self.replay = replay
        self.faults = FaultBook()
        self._log_lock = threading.Lock()
        self._requests: deque[dict[str, t.Any]] = deque(maxlen=request_log_size)
        self.store = self._build_store()
        self._server: SimulatorServer | None = None
        self._thread: threading.Thread | None = None

    def _build_store(self) -> Store:
        store = Store()
        if self.replay is not None:
            self.replay.load_into(store)
            return store
        load_demo(
            store,
            records_per_app=self.demo_records,
            extra_apps=self.extra_apps,
            seed=self.seed,
            records_per_submission=self.variants.records_per_submission,
        )
        if self.synthetic:
            # The synthetic history replaces the leads demo records; writes made later are
            # ordinary records with larger ids, served after it.
            leads = store.app("leads")
            leads.records.clear()
            leads.synthetic = SyntheticRecords(self.synthetic, first_id=store.counter + 1)
            leads.next_record_number = self.synthetic
            store.advance_counter(self.synthetic)
        return store

    def reset(self) -> None:
        """Back to the start-up data: a test module can share one server between tests."""
        self.faults.clear()
        self.clear_request_log()
        self.store = self._build_store()

    # Lifecycle

    def start(self) -> Simulator:
        handler = type("BoundHandler", (Handler,), {"simulator": self})
        self._server = SimulatorServer((self.host, self.port), handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # so stop() returns at once, not after 0.5 s
            name="flowfinity-simulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.close_connections()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # Addresses

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def view_keys(self) -> list[str]:
        return list(self.store.apps)

    def view_url(self, view_key: str) -> str:
        return self.base_url + self.store.app(view_key).view_path

    def operation_url(self, view_key: str, operation: str) -> str:
        return f"{self.base_url}{self.store.app(view_key).operations_path}/{operation}"

    def info(self) -> dict[str, t.Any]:
        """What a separate process needs to find its way; never the password."""
        return {
            "base_url": self.base_url,
            "views": {key: self.view_url(key) for key in self.view_keys()},
            "operations": {
                key: self.base_url + self.store.app(key).operations_path for key in self.view_keys()
            },
        }

    def check_credentials(self, header: str | None) -> bool:
        token = base64.b64encode(f"{self.username}:{self._password}".encode()).decode("ascii")
        return hmac.compare_digest((header or "").encode(), f"Basic {token}".encode())

    # Data (shortcuts to the store, by view key). Writes obey a `late_visible` fault, if any.

    def _hold_policy(self, view_key: str) -> bool | int:
        reads = self.faults.hold_for_write(view_key)
        return False if reads is None else reads

    def create(self, view_key: str, fields: Record | None = None) -> Record:
        return self._visible(self.store.create(view_key, fields, hold=self._hold_policy(view_key)))

    def create_together(self, view_key: str, items: t.Sequence[Record | None]) -> list[Record]:
        """New records in one transaction: one submission id for all of them."""
        return self.store.create_together(view_key, items)

    def update(self, view_key: str, record_id: str, fields: Record) -> Record:
        hold = self._hold_policy(view_key)
        return self._visible(self.store.update(view_key, record_id, fields, hold=hold))

    def set_state(self, view_key: str, record_id: str, state: str) -> Record:
        hold = self._hold_policy(view_key)
        return self._visible(self.store.set_state(view_key, record_id, state, hold=hold))

    def delete(self, view_key: str, record_id: str) -> Record:
        """A user's delete: the Deleted state, or a purge where the site's Delete purges.

        The switch is the site's (`variants.delete_operation`), a replayed view's included: a
        capture cannot tell how its site deletes.
        """
        if self.variants.delete_operation == "purge":
            return self.purge(view_key, record_id)
        return self._visible(
            self.store.delete(view_key, record_id, hold=self._hold_policy(view_key))
        )

    def purge(self, view_key: str, record_id: str) -> Record:
        """Remove a record physically; the answer is the record as it was last."""
        return self.store.purge(view_key, record_id)

    def leave(self, view_key: str, record_id: str, fields: Record | None = None) -> Record:
        """An update that moves the record out of the view's filter (it takes an id)."""
        return self.store.leave(view_key, record_id, fields)

    def enter(self, view_key: str, record_id: str, fields: Record | None = None) -> Record:
        """An update that brings the record back into the view, with a new id."""
        return self.store.enter(view_key, record_id, fields)

    def restore(self, view_key: str, record_id: str) -> Record:
        hold = self._hold_policy(view_key)
        return self._visible(self.store.restore(view_key, record_id, hold=hold))

    @staticmethod
    def _visible(result: Record | Held) -> Record:
        """A write's answer is its record, whether or not readers can see it yet."""
        return dict(result.record) if isinstance(result, Held) else result

    def hold(
        self,
        view_key: str,
        fields: Record | None = None,
        *,
        record_id: str | None = None,
        reads: int | None = None,
        ids: int | None = None,
    ) -> Held:
        """Start a slow submission: its id is taken now, it is visible after `.release()`.

        A create, or an update of `record_id`; `reads` releases it by itself after that many
        view reads of the app, `ids` once the site-wide counter has moved that many ids past
        its own (whichever comes first). Use as a context manager to release on exit.
        """
        hold: bool | int = True if reads is None else reads
        if record_id is None:
            return t.cast(Held, self.store.create(view_key, fields, hold=hold, ids=ids))
        return t.cast(
            Held, self.store.update(view_key, record_id, fields or {}, hold=hold, ids=ids)
        )

    def late_visible(
        self, view: str | None = None, every: int = 1, reads: int = 1, times: int | None = None
    ) -> Fault:
        """From now on every `every`-th write is invisible for `reads` view reads."""
        fault = Fault("late_visible", view=view, every=every, reads=reads, times=times)
        self.faults.add(fault)
        return fault

    def advance_counter(self, by: int) -> int:
        return self.store.advance_counter(by)

    @property
    def counter(self) -> int:
        return self.store.counter

    def truth(self, view_key: str) -> dict[str, Record]:
        """Every record the view shows now, at its latest version, by RecordID."""
        return self.store.truth(view_key)

    def gone(self, view_key: str) -> list[str]:
        """The RecordIDs the view no longer shows (purged, or out of its filter), sorted."""
        return self.store.gone(view_key)

    # Request log

    def log_request(self, entry: dict[str, t.Any]) -> None:
        with self._log_lock:
            self._requests.append(entry)

    @property
    def requests(self) -> list[dict[str, t.Any]]:
        """Every request so far, oldest first (views, operations, 404s; not the control API).

        A view entry: method, path, query, view, cursor (int or None), status (0 for a reset),
        records_sent, faults (kinds applied), time. The entries of requests in progress are
        still updated (status, records_sent) while they are answered.
        """
        with self._log_lock:
            return list(self._requests)

    def clear_request_log(self) -> None:
        with self._log_lock:
            self._requests.clear()

    def view_requests(self, view_key: str) -> list[dict[str, t.Any]]:
        return [r for r in self.requests if r.get("view") == view_key]

    def cursor_requests(self, view_key: str) -> list[int | None]:
        """The cursor each request to the view asked from (None: no parameter)."""
        return [r["cursor"] for r in self.view_requests(view_key)]

    def records_sent(self, view_key: str) -> int:
        return sum(r["records_sent"] for r in self.view_requests(view_key))

    # Serving a view

    def variants_for(self, view_key: str) -> Variants:
        """How this view answers: its own variants (a replayed capture's), else the site's."""
        return self.store.app(view_key).variants or self.variants

    def framing_for(self, view_key: str) -> str:
        """How a normal view response is framed (`auto`: a length when the body is small).

        A synthetic history is streamed with chunked encoding: its length is not known
        before it is rendered, and rendering it twice would halve the throughput. A replayed
        view is framed as the captured site framed it.
        """
        replayed = self.store.app(view_key).variants
        if replayed is not None and replayed.framing != "auto":
            return replayed.framing
        if self.framing != "auto":
            return self.framing
        return "chunked" if self.store.app(view_key).synthetic is not None else "length"

    def response_cap(self, faults: list[Fault], view_key: str | None = None) -> int:
        """Records per response: a `cap` fault's, else the view's, else the site's (0: none)."""
        caps = [f.cap for f in faults if f.kind == "cap" and f.cap > 0]
        if caps:
            return min(caps)
        own = self.store.app(view_key).cap if view_key is not None else 0
        return own or self.max_records_per_response

    def select(
        self, view_key: str, after: int | None, cap: int = 0, *, order: str | None = None
    ) -> t.Iterator[str]:
        """The JSON text of each record a request gets, in the order the view sends them.

        A synthetic history is rendered lazily (it may hold millions of records); records
        written since are served after it, their ids being larger. `order` (an `unsorted`
        fault) disorders the records before the cap applies, as a mis-sorted view would.
        """
        written, synthetic, hidden = self.store.read_view(view_key)
        newer = [r for r in written if after is None or int(r["lastSubmissionId"]) > after]
        descending = order == "descending"
        if descending:
            newer.reverse()
        variants = self.variants_for(view_key)
        if variants.renames_keys:
            newer = [variants.rename_record(r) for r in newer]
        dumps = _dumps_exact if self.store.app(view_key).exact_numbers else _dumps
        rows: t.Iterator[str] = (dumps(r) for r in newer)
        if synthetic is not None:
            skip = {i for r in hidden if (i := synthetic.index_of(r)) is not None}
            history = synthetic.render_from(after, skip, reverse=descending)
            if variants.renames_keys:
                history = map(variants.rename_text, history)
            rows = itertools.chain(rows, history) if descending else itertools.chain(history, rows)
        if order == "swap_first":
            rows = _swap_first(rows)
        elif order == "swap_last":
            rows = _swap_last(rows)
        return itertools.islice(rows, cap) if cap else rows


def _dumps(record: Record) -> str:
    return json.dumps(record, ensure_ascii=False)


_EXACT = msgspec.json.Encoder(decimal_format="number")


def _dumps_exact(record: Record) -> str:
    """JSON with Decimal numbers written as they were read (a replayed capture's)."""
    return _EXACT.encode(record).decode()


def _swap_first(rows: t.Iterator[str]) -> t.Iterator[str]:
    head = list(itertools.islice(rows, 2))
    yield from reversed(head)
    yield from rows


def _swap_last(rows: t.Iterator[str]) -> t.Iterator[str]:
    window: deque[str] = deque()
    for row in rows:
        window.append(row)
        if len(window) > 2:
            yield window.popleft()
    yield from reversed(window)
