"""Fixtures for the simulator's own tests: a fresh server per test and a tiny HTTP client.

The client is http.client, not requests: these tests look at the raw behaviour (short reads,
resets, framing) that a higher-level library would smooth over or retry.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import typing as t
from collections.abc import Iterator
from urllib.parse import urlencode, urlsplit

import pytest

from flowfinity_simulator import Simulator

USERNAME = "integration"
PASSWORD = "s3cret"


class Client:
    """Raw HTTP against one simulator: every call opens its own connection."""

    def __init__(self, sim: Simulator, timeout: float = 5.0) -> None:
        self.sim = sim
        self.timeout = timeout
        token = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
        self.auth = {"Authorization": f"Basic {token}"}

    def connection(self, timeout: float | None = None) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(
            self.sim.host, self.sim.port, timeout=timeout or self.timeout
        )

    def request(
        self,
        method: str,
        url_or_path: str,
        body: t.Any = None,
        *,
        auth: bool = True,
        params: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> tuple[http.client.HTTPResponse, http.client.HTTPConnection]:
        path = urlsplit(url_or_path).path if url_or_path.startswith("http") else url_or_path
        if params is not None:
            path += "?" + urlencode(params)
        conn = self.connection(timeout)
        headers = dict(self.auth) if auth else {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=headers)
        return conn.getresponse(), conn

    def view(self, key: str, **params: str) -> list[dict[str, t.Any]]:
        """A view read that must succeed: the records."""
        response, conn = self.request("GET", self.sim.view_url(key), params=params or None)
        with contextlib.closing(conn):
            assert response.status == 200, response.read()
            return t.cast(list, json.loads(response.read()))

    def op(self, key: str, operation: str, payload: dict[str, t.Any]) -> tuple[int, t.Any]:
        response, conn = self.request("POST", self.sim.operation_url(key, operation), payload)
        with contextlib.closing(conn):
            return response.status, json.loads(response.read())

    def control(self, method: str, path: str, body: t.Any = None) -> t.Any:
        response, conn = self.request(method, path, body, auth=False)
        with contextlib.closing(conn):
            payload = json.loads(response.read())
            assert response.status == 200, payload
            return payload


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(username=USERNAME, password=PASSWORD, port=0, demo_records=25, seed=1) as s:
        yield s


@pytest.fixture
def client(sim: Simulator) -> Client:
    return Client(sim)


@pytest.fixture
def make_sim() -> Iterator[t.Callable[..., Simulator]]:
    """Started simulators with the test credentials and any options; all stopped afterwards."""
    started: list[Simulator] = []

    def make(**options: t.Any) -> Simulator:
        sim = Simulator(username=USERNAME, password=PASSWORD, port=0, **options).start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()


@pytest.fixture
def make_client() -> t.Callable[..., Client]:
    return Client
