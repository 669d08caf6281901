"""Real services for the tests (NATS now; Postgres can follow the same pattern).

A test that needs a service takes a fixture from here. The fixture finds the
service's address in an environment variable (with a local default) and, when
nothing answers there, skips the test with a reason saying what to start, or
fails it when ``ACTORFLOW_REQUIRE_SERVICES=1`` is set (``.ci/run`` sets it,
so CI never passes by skipping).

:class:`NATSServer` runs a private ``nats-server`` on a free port, for the
tests that stop and restart a server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

__all__ = ("NATSServer", "nats_server", "nats_url", "require_service")

REQUIRE = "ACTORFLOW_REQUIRE_SERVICES"


def require_service(name: str, reason: str) -> None:
    """Skip the test: service ``name`` is missing (fail it if ``ACTORFLOW_REQUIRE_SERVICES=1``)."""
    if os.environ.get(REQUIRE) == "1":
        pytest.fail(f"{name}: {reason} (and {REQUIRE}=1 is set)", pytrace=False)
    pytest.skip(f"{name}: {reason}")


def answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections at ``host:port``."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def wait_for_port(host: str, port: int, *, up: bool, timeout: float = 10.0) -> None:
    """Wait until ``host:port`` answers (``up``) or stops answering; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while answers(host, port, 0.2) != up:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{host}:{port} still {'down' if up else 'up'} after {timeout}s")
        time.sleep(0.01)


def _nats_py() -> None:
    try:
        import nats  # noqa: F401
    except ImportError:
        require_service("NATS", "nats-py is not installed (pip install 'actorflow[nats]')")


@pytest.fixture(scope="session")
def nats_url() -> str:
    """The URL of a running NATS server (env ``ACTORFLOW_TEST_NATS``, default 127.0.0.1:4222)."""
    _nats_py()
    url = os.environ.get("ACTORFLOW_TEST_NATS", "nats://127.0.0.1:4222")
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 4222
    if not answers(host, port):
        require_service(
            "NATS",
            f"no server answers at {url} (start one: nats-server -js, or set ACTORFLOW_TEST_NATS)",
        )
    return url


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NATSServer:
    """A private ``nats-server`` on a free loopback port that a test may stop and start."""

    def __init__(self, binary: str, log: Path) -> None:
        self.binary, self.log = binary, log
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        self.proc = subprocess.Popen(
            [self.binary, "-a", "127.0.0.1", "-p", str(self.port), "-l", str(self.log)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port("127.0.0.1", self.port, up=True)

    def kill(self) -> None:
        """Kill the server (SIGKILL: no goodbye to its clients) and wait until it is gone."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None
        wait_for_port("127.0.0.1", self.port, up=False)


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NATSServer]:
    """A private nats-server (see :class:`NATSServer`), started, and killed after the test."""
    _nats_py()
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    if not os.access(binary, os.X_OK):
        require_service("NATS", "no nats-server binary (apt-get install nats-server)")
    server = NATSServer(binary, tmp_path / "nats-server.log")
    server.start()
    try:
        yield server
    finally:
        server.kill()
