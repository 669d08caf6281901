"""MemoryJournal and SQLiteJournal agree: one random history, the same answers.

A hypothesis state machine appends the same records to both journals and,
after every step, asks both the same questions. Hypothesis drives it
synchronously; the journals live on an event loop in a blocking portal, once
on asyncio and once on trio.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import anyio.from_thread
import msgspec
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

import actorflow as af
from actorflow._journals._sqlite import SQLiteJournal
from actorflow.abc import Journal
from actorflow.records import (
    ErrorInfo,
    Record,
    RunFinished,
    RunResumed,
    RunStarted,
    StepAttemptFailed,
    StepCheckpoint,
    StepCompleted,
    StepGaveUp,
    StepStarted,
    StreamClose,
    StreamWrite,
)

_T = TypeVar("_T")

RUN_IDS = st.sampled_from(["r0", "r1", "r2", "r3"])
KEYS = st.sampled_from(["tokens", "log", "a.b:c-d"])
STEP_IDS = st.sampled_from(["main", "fetch", "fetch-2"])
TIMES = st.floats(min_value=0, max_value=2e9, allow_nan=False)
SMALL = st.integers(min_value=0, max_value=5)
INTS = st.integers(min_value=-(2**63), max_value=2**63 - 1)
BLOBS = st.one_of(st.none(), INTS, st.text(max_size=5), st.lists(INTS, max_size=3)).map(
    msgspec.msgpack.encode
)
ERRORS = st.builds(ErrorInfo, st.sampled_from(["ValueError", "KeyError"]), st.text(max_size=8))


class JournalAgreement(RuleBasedStateMachine):
    """Drives a MemoryJournal and a SQLiteJournal with the same records."""

    backend: ClassVar[str] = "asyncio"
    runs = Bundle("runs")

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="actorflow-agreement-"))
        self.portal_cm: AbstractContextManager[anyio.from_thread.BlockingPortal] = (
            anyio.from_thread.start_blocking_portal(self.backend)
        )
        self.portal = self.portal_cm.__enter__()
        self.memory = af.MemoryJournal()
        self.sqlite = SQLiteJournal(self.directory / "journal.db")
        self.call(self.memory.open)
        self.call(self.sqlite.open)
        self.started: set[str] = set()
        self.lengths: dict[tuple[str, str], int] = {}
        self.closed: set[tuple[str, str]] = set()
        self.positions: dict[str, int] = {}

    def call(self, fn: Callable[..., Awaitable[_T]], *args: Any) -> _T:
        return self.portal.call(fn, *args)

    def append(self, *records: Record) -> None:
        def append_all() -> int:
            ticket = 0
            for record in records:
                self.memory.append(record)
                ticket = self.sqlite.append(record)
            return ticket

        ticket = self.portal.call(append_all)
        self.call(self.sqlite.wait_committed, ticket)

    def position(self, run_id: str) -> int:
        self.positions[run_id] = self.positions.get(run_id, -1) + 1
        return self.positions[run_id]

    def teardown(self) -> None:
        try:
            self.call(self.sqlite.close)
            self.call(self.memory.close)
        finally:
            self.portal_cm.__exit__(None, None, None)
            shutil.rmtree(self.directory, ignore_errors=True)

    # -- runs ----------------------------------------------------------------

    @initialize(target=runs, run_id=RUN_IDS, workflow=st.sampled_from(["wf", "agent"]), at=TIMES)
    def first_run(self, run_id: str, workflow: str, at: float) -> str:
        return self.start_run(run_id, workflow, at)

    @rule(target=runs, run_id=RUN_IDS, workflow=st.sampled_from(["wf", "agent"]), at=TIMES)
    def start_run(self, run_id: str, workflow: str, at: float) -> str:
        if run_id not in self.started:
            self.started.add(run_id)
            self.append(RunStarted(run_id, workflow=workflow, input=b"\xa2in", at=at))
        return run_id

    @rule(run_id=runs, at=TIMES)
    def resume(self, run_id: str, at: float) -> None:
        self.append(RunResumed(run_id, at=at))

    @rule(
        run_id=runs,
        status=st.sampled_from(["COMPLETED", "FAILED", "CANCELLED"]),
        at=TIMES,
        output=BLOBS,
        error=ERRORS,
    )
    def finish(self, run_id: str, status: str, at: float, output: bytes, error: ErrorInfo) -> None:
        self.append(
            RunFinished(
                run_id,
                status=status,
                at=at,
                output=output if status == "COMPLETED" else None,
                error=error if status == "FAILED" else None,
            )
        )

    # -- steps ---------------------------------------------------------------

    @rule(
        run_id=runs,
        step_id=STEP_IDS,
        attempt=st.integers(1, 3),
        outcome=st.sampled_from(["completed", "failed", "gave_up", "checkpoint", "running"]),
        at=TIMES,
        value=BLOBS,
        error=ERRORS,
    )
    def step(
        self,
        run_id: str,
        step_id: str,
        attempt: int,
        outcome: str,
        at: float,
        value: bytes,
        error: ErrorInfo,
    ) -> None:
        pos = self.position(run_id)
        started = StepStarted(
            run_id, position=pos, step_id=step_id, name=step_id, attempt=attempt, at=at
        )
        follow: dict[str, Record | None] = {
            "completed": StepCompleted(run_id, position=pos, attempt=attempt, output=value, at=at),
            "failed": StepAttemptFailed(run_id, position=pos, attempt=attempt, error=error, at=at),
            "gave_up": StepGaveUp(run_id, position=pos, attempts=attempt, error=error, at=at),
            "checkpoint": StepCheckpoint(run_id, position=pos, attempt=attempt, value=value),
            "running": None,
        }
        record = follow[outcome]
        self.append(started, *([] if record is None else [record]))

    # -- durable streams -----------------------------------------------------

    @rule(
        run_id=runs,
        key=KEYS,
        step_id=STEP_IDS,
        attempt=st.integers(1, 3),
        values=st.lists(BLOBS, min_size=1, max_size=30),
    )
    def write_stream(
        self, run_id: str, key: str, step_id: str, attempt: int, values: list[bytes]
    ) -> None:
        if (run_id, key) in self.closed:
            return
        offset = self.lengths.get((run_id, key), 0)
        records: list[Record] = []
        for value in values:
            from_body = step_id == "main"
            records.append(
                StreamWrite(
                    run_id,
                    key=key,
                    offset=offset,
                    value=value,
                    step_id=step_id,
                    attempt=1 if from_body else attempt,
                    position=self.position(run_id) if from_body else None,
                )
            )
            offset += 1
        self.lengths[run_id, key] = offset
        self.append(*records)

    @rule(run_id=runs, key=KEYS, from_body=st.booleans())
    def close_stream(self, run_id: str, key: str, from_body: bool) -> None:
        self.closed.add((run_id, key))
        position = self.position(run_id) if from_body else None
        self.append(StreamClose(run_id, key=key, position=position))

    @precondition(lambda self: bool(self.lengths))
    @rule(data=st.data(), from_offset=st.integers(0, 40), limit=st.integers(0, 12))
    def read_stream(self, data: st.DataObject, from_offset: int, limit: int) -> None:
        run_id, key = data.draw(st.sampled_from(sorted(self.lengths)))
        args = (run_id, key, from_offset, limit)
        assert self.call(self.sqlite.read_stream, *args) == self.call(
            self.memory.read_stream, *args
        )

    # -- agreement -----------------------------------------------------------

    @invariant()
    def journals_agree(self) -> None:
        assert self.sqlite.committed == self.memory.committed
        assert self.portal.call(answers, self.sqlite) == self.portal.call(answers, self.memory)


async def answers(journal: Journal) -> list[object]:
    """Everything the read side says about every run id the machine may use."""
    result: list[object] = [await journal.list_runs()]
    result.extend([await journal.list_runs(status) for status in af.RunStatus])
    for run_id in ["r0", "r1", "r2", "r3"]:
        result.append(await journal.get_run(run_id))
        result.append(await journal.load_history(run_id))
        streams = await journal.list_streams(run_id)
        result.append(streams)
        for stream in streams:
            result.append(await journal.read_stream(run_id, stream.key))
            result.append(await journal.read_stream(run_id, stream.key, stream.length - 1, 1))
    return result


class AsyncioAgreement(JournalAgreement):
    backend = "asyncio"


class TrioAgreement(JournalAgreement):
    backend = "trio"


TestAgreementOnAsyncio = AsyncioAgreement.TestCase
TestAgreementOnTrio = TrioAgreement.TestCase
TestAgreementOnAsyncio.settings = TestAgreementOnTrio.settings = settings(stateful_step_count=30)
