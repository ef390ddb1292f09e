"""Concurrent Flowfinity users for the end-to-end suites that run the job while the source changes.

The chaos suite, the database-fault suites and the compressed day of schedules all run the
real job against the simulator while this writer creates, updates, deletes (state Deleted)
and restores records, sometimes in bursts, and starts slow (held, late-visible) submissions
that commit a few operations later. It remembers which versions became visible late, because
the lookback overlap (not the bookmark) is what delivers those.

With `drift`, it also changes the view in the ways the change feed cannot show: it purges
records (a physical delete) and moves records out of the view's filter and back in. The
simulator's `gone(view)` then lists what the view no longer shows. A record with a slow
submission pending is never purged or moved out, and slow edits go only to records in the view,
so every late version it remembers does become visible.
"""

from __future__ import annotations

import collections
import random
import threading
import time
import typing as t

from flowfinity_simulator import Simulator

VIEW = "leads"
HELD_FOR_OPS = (1, 6)  # a slow submission commits after this many other writes (<< lookback)
# The lookback's bound: a late submission is re-read if fewer than `lookback` (1000) ids are
# taken after its id until a run starts after it became visible -- which includes the rest of
# the run in flight when it did. So no burst while one is pending or for a while after, and
# the steady writes stay well under 1000 ids per run.
QUIET_AFTER_LATE_S = 30.0
PHASE_S = 50.0  # the writer alternates: bursts (no slow submissions), then slow submissions
WRITE_PAUSE_S = (0.02, 0.06)
# For suites whose runs are slowed down on purpose (a database fault, many runs in a row):
# - fewer writes per second: a run reads until a response brings nothing new, so writes
#   faster than the site answers keep it chasing them;
# - no slow submissions: a late version is delivered only within the lookback bound, which
#   long runs under bursts can exceed; any record missing is then a real loss.
WRITER_FOR_LONG_RUNS: dict[str, t.Any] = {"pause_s": (0.1, 0.3), "slow_submissions": False}
OPS = ["create", "update", "delete", "restore", "slow", "burst"]
OP_WEIGHTS = [30, 30, 15, 10, 10, 3]
DRIFT_OPS = ["purge", "leave", "enter"]  # only with `drift`
DRIFT_WEIGHTS = [4, 4, 4]


class Writer(threading.Thread):
    """Concurrent Flowfinity users: creates, updates, deletes, restores, bursts, slow submits."""

    def __init__(
        self,
        sim: Simulator,
        seed: int,
        synthetic: int,
        view: str = VIEW,
        pause_s: tuple[float, float] = WRITE_PAUSE_S,
        slow_submissions: bool = True,
        drift: bool = False,
        bursts: bool = True,
    ) -> None:
        super().__init__(daemon=True, name="source-writer")
        self.sim = sim
        self.view = view
        self.pause_s = pause_s
        self.slow_submissions = slow_submissions
        self.drift = drift
        self.bursts = bursts  # False: a steady rate of writes (a suite that measures one)
        self.rng = random.Random(seed)
        self.ids = [f"{i:09d}" for i in range(1, synthetic + 1)]  # every record not purged
        self.deleted: set[str] = set()
        self.purged: set[str] = set()
        self.outside: set[str] = set()  # out of the view's filter now
        self.drifted: set[str] = set()  # ever purged or moved out (a reconciliation flags them)
        self.pending: list[list[t.Any]] = []  # [Held, writes left before it commits]
        self.late: set[tuple[str, int]] = set()  # versions that became visible late
        self.last_late = float("-inf")  # when the last one became visible
        self.ops: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()
        self.halt = threading.Event()
        self.error: BaseException | None = None
        self.started = time.monotonic()

    def run(self) -> None:
        try:
            while not self.halt.is_set():
                self.step()
                self.halt.wait(self.rng.uniform(*self.pause_s))
        except BaseException as exc:  # surfaced by the test
            self.error = exc
        finally:
            for held, _ in self.pending:
                self.commit_late(held)
            self.pending.clear()

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=30)
        assert self.error is None, f"writer failed: {self.error!r}"

    def commit_late(self, held: t.Any) -> None:
        with self.lock:
            record = held.release()
            self.late.add((record["RecordID"], int(record["lastSubmissionId"])))
            self.last_late = time.monotonic()
        if held.record_id not in self.ids:
            self.ids.append(held.record_id)

    def movable(self) -> list[str]:
        """The records with no slow submission pending: only those are purged or moved out."""
        pending = {held.record_id for held, _ in self.pending}
        return [i for i in self.ids if i not in pending] if pending else self.ids

    def late_versions(self) -> set[tuple[str, int]]:
        with self.lock:
            return set(self.late)

    def step(self) -> None:
        for entry in list(self.pending):
            entry[1] -= 1
            if entry[1] <= 0:
                self.pending.remove(entry)
                self.commit_late(entry[0])
        rng = self.rng
        if self.drift:
            op = rng.choices(OPS + DRIFT_OPS, weights=OP_WEIGHTS + DRIFT_WEIGHTS)[0]
        else:
            op = rng.choices(OPS, weights=OP_WEIGHTS)[0]
        if op == "restore" and not self.deleted:
            op = "update"
        if op == "enter" and not self.outside:
            op = "leave"
        if op == "delete" and self.sim.variants.delete_operation == "purge":
            op = "purge"  # the site's Delete removes records: the writer must know which
        movable = self.movable() if op in ("purge", "leave") else []
        if op == "leave":
            movable = [i for i in movable if i not in self.outside]
        if op in ("purge", "leave") and not movable:
            op = "update"
        bursty_phase = int((time.monotonic() - self.started) / PHASE_S) % 2 == 0
        if op == "slow" and (bursty_phase or not self.slow_submissions):
            op = "create"
        if op == "burst" and (
            not self.bursts
            or not bursty_phase
            or self.pending
            or time.monotonic() - self.last_late < QUIET_AFTER_LATE_S
        ):
            op = "update"  # a burst could push a late submission out of the lookback
        self.ops[op] += 1
        if op == "create":
            created = self.sim.create(self.view, {"Company": f"Chaos {rng.randrange(10**6)}"})
            self.ids.append(created["RecordID"])
        elif op == "update":
            self.sim.update(
                self.view, rng.choice(self.ids), {"Summary": f"v{rng.randrange(10**6)}"}
            )
        elif op == "delete":
            victim = rng.choice(self.ids)
            self.sim.delete(self.view, victim)
            self.deleted.add(victim)
        elif op == "restore":
            back = rng.choice(sorted(self.deleted))
            self.sim.restore(self.view, back)
            self.deleted.discard(back)
        elif op == "purge":
            victim = rng.choice(movable)
            self.sim.purge(self.view, victim)
            self.ids.remove(victim)
            self.deleted.discard(victim)
            self.outside.discard(victim)
            self.purged.add(victim)
            self.drifted.add(victim)
        elif op == "leave":
            leaving = rng.choice(movable)
            self.sim.leave(self.view, leaving, {"Summary": "moved out of the view"})
            self.outside.add(leaving)
            self.drifted.add(leaving)
        elif op == "enter":
            back = rng.choice(sorted(self.outside))
            self.sim.enter(self.view, back, {"Summary": "back in the view"})
            self.outside.discard(back)
        elif op == "slow":
            # A slow edit of a record outside the view would never become visible.
            in_view = [i for i in self.ids if i not in self.outside] if self.outside else self.ids
            if rng.random() < 0.5 or not in_view:
                held = self.sim.hold(self.view, {"Company": "Slow Submit"})
            else:
                record_id = rng.choice(in_view)
                held = self.sim.hold(self.view, {"Summary": "slow edit"}, record_id=record_id)
            self.pending.append([held, rng.randint(*HELD_FOR_OPS)])
        else:
            size = rng.randint(500, 3000)
            self.ops["burst_updates"] += size - 1  # `burst` itself counts one write
            for record_id in rng.sample(self.ids, size):
                self.sim.update(self.view, record_id, {"Summary": "burst"})
