"""The Meltano harness under `pytest -n`: workers share .meltano/, so installs take turns."""

from __future__ import annotations

import fcntl
import threading

from tests.harness.meltano import INSTALL_LOCK, ensure_installed


def test_ensure_installed_waits_while_another_worker_installs():
    ensure_installed("tap-flowfinity")  # installed once here; later calls only check
    returned = threading.Event()

    def ensure() -> None:
        ensure_installed("tap-flowfinity")
        returned.set()

    with INSTALL_LOCK.open("a") as held:  # another worker's `meltano install` in progress
        fcntl.flock(held, fcntl.LOCK_EX)
        waiter = threading.Thread(target=ensure, daemon=True)
        waiter.start()
        assert not returned.wait(1), "ensure_installed did not wait for the install lock"
    assert returned.wait(30), "ensure_installed still waits after the lock was released"
    waiter.join(timeout=30)
