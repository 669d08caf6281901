"""``uvicorn --workers 2`` over one SQLite file: starts from both workers, runs finish once.

A real uvicorn with two worker processes, each with its own runtime on the
journal: requests land on either; every run started through either is
executed once (by the worker that writes the journal), and its durable
stream reads the same from both.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import anyio
import httpx
import pytest
from _sse import iter_events

import actorflow as af

PROGRAMS = Path(__file__).parent / "programs"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
@pytest.mark.timeout(180)  # two server processes start: slow on a loaded machine
def test_two_uvicorn_workers_share_one_journal(tmp_path: Path) -> None:
    db, port = tmp_path / "app.db", _free_port()
    env = {**os.environ, "ACTORFLOW_TEST_DB": str(db), "PYTHONPATH": str(PROGRAMS)}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "web_workers_app:api",
            "--workers",
            "2",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            pids, writers = _wait_for_both(client)
            assert len(pids) == 2, pids
            assert writers == 1  # one writes and executes, the other asks it
            run_ids = []
            for i in range(12):  # new connections: the kernel spreads them over both
                with httpx.Client(base_url=base, timeout=10) as fresh:
                    answer = fresh.post(
                        "/workflows/ww_count",
                        json={"input": f"one two three {i}"},
                        headers={"Connection": "close"},
                    )
                assert answer.status_code == 202, answer.text
                run_ids.append(answer.json()["run_id"])
            for run_id in run_ids:
                words = []
                with (
                    httpx.Client(base_url=base, timeout=30) as fresh,
                    fresh.stream("GET", f"/runs/{run_id}/streams/words") as stream,
                ):
                    for event in iter_events(stream):
                        if event.event == "end":
                            break
                        if event.event == "message":
                            words.append(event.json()["value"])
                assert words == ["one", "two", "three", words[-1]], words
        info = anyio.run(_journal_runs, db)
        assert sorted(info) == sorted(run_ids)
        assert set(info.values()) == {"COMPLETED"}
    finally:
        server.terminate()
        try:
            server.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.communicate()


def _wait_for_both(client: httpx.Client) -> tuple[set[int], int]:
    pids: dict[int, bool] = {}
    for _ in range(600):  # bounded: up to ~60 s for both workers to answer
        try:
            with httpx.Client(base_url=str(client.base_url), timeout=2) as fresh:
                body = fresh.get("/whoami", headers={"Connection": "close"}).json()
        except httpx.HTTPError:
            anyio.run(anyio.sleep, 0.1)
            continue
        pids[body["pid"]] = body["writes"]
        if len(pids) == 2:
            break
    return set(pids), sum(pids.values())


async def _journal_runs(db: Path) -> dict[str, str]:
    async with af.Runtime(af.SQLiteJournal(db, readonly=True)) as rt:
        return {r.run_id: r.status.value for r in await rt.list_runs()}
