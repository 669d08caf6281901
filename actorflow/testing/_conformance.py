"""``check_journal(factory)``: the conformance suite every journal backend passes.

A hypothesis state machine appends one random history (runs started, resumed
and finished; step attempts; durable stream writes and closes, from the body
and from steps) to the journal under test and to a :class:`MemoryJournal`
reference, reopens the journal under test now and then, and after every step
asks both every read question; the answers must agree, and must agree with
what the machine itself knows (stream lengths, closes, statuses).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import anyio.from_thread
import msgspec
from hypothesis import settings as Settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from .._journals._memory import MemoryJournal
from ..abc import Journal, RunStatus
from ..records import (
    ErrorInfo,
    Record,
    RunEnded,
    RunResumed,
    RunStarted,
    StepAttemptFailed,
    StepCheckpoint,
    StepCompleted,
    StepGaveUp,
    StepStarted,
    StreamEnded,
    StreamWrite,
)

__all__ = ("check_journal",)

_T = TypeVar("_T")

_RUN_IDS = ["r0", "r1", "r2", "r3"]
RUN_IDS = st.sampled_from(_RUN_IDS)
KEYS = st.sampled_from(["tokens", "log", "a.b:c-d"])
STEP_IDS = st.sampled_from(["main", "fetch", "fetch-2"])
TIMES = st.floats(min_value=0, max_value=2e9, allow_nan=False)
INTS = st.integers(min_value=-(2**63), max_value=2**63 - 1)
BLOBS = st.one_of(st.none(), INTS, st.text(max_size=5), st.lists(INTS, max_size=3)).map(
    msgspec.msgpack.encode
)
ERRORS = st.builds(ErrorInfo, st.sampled_from(["ValueError", "KeyError"]), st.text(max_size=8))


def check_journal(
    factory: Callable[[Path], Journal],
    *,
    backend: str = "asyncio",
    settings: Settings | None = None,
) -> None:
    """Check that the journals ``factory`` makes behave as the journal protocol says.

    ``factory(directory)`` returns a new, unopened journal that keeps its data
    in ``directory`` (a fresh temporary directory per example; ignore it for a
    journal that keeps nothing on disk). The journal is opened, closed and
    opened again on the same object, so a journal must survive a reopen with
    its committed records. Call it from a test (sync, not async)::

        def test_my_journal_conforms():
            actorflow.testing.check_journal(lambda directory: MyJournal(directory / "j"))

    Args:
        factory: makes the journal under test.
        backend: ``"asyncio"`` or ``"trio"``: the event loop the journal runs on.
        settings: hypothesis settings (default: 30 steps per example and the
            active profile's number of examples).

    Raises:
        AssertionError: (through hypothesis, shrunk) a history on which the
            journal's answers differ from the reference's.
    """

    class Machine(_JournalMachine):
        pass

    Machine.factory = staticmethod(factory)
    Machine.backend = backend
    run_state_machine_as_test(
        Machine, settings=settings or Settings(stateful_step_count=30, deadline=None)
    )


class _JournalMachine(RuleBasedStateMachine):
    factory: Callable[[Path], Journal]
    backend: str = "asyncio"
    runs = Bundle("runs")

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="actorflow-check-journal-"))
        self.portal_cm: AbstractContextManager[anyio.from_thread.BlockingPortal] = (
            anyio.from_thread.start_blocking_portal(self.backend)
        )
        self.portal = self.portal_cm.__enter__()
        self.reference = MemoryJournal()
        self.journal = type(self).factory(self.directory)
        self.call(self.reference.open)
        self.call(self.journal.open)
        self.started: set[str] = set()
        self.status: dict[str, RunStatus] = {}
        self.lengths: dict[tuple[str, str], int] = {}
        self.closed: set[tuple[str, str]] = set()
        self.positions: dict[str, int] = {}
        # Tickets count appends since the journal was opened: compare counts
        # since the last reopen.
        self.bases = (self.journal.committed, self.reference.committed)

    def call(self, fn: Callable[..., Awaitable[_T]], *args: Any) -> _T:
        return self.portal.call(fn, *args)

    def append(self, *records: Record) -> None:
        def append_all() -> int:
            ticket = 0
            for record in records:
                self.reference.append(record)
                ticket = self.journal.append(record)
            return ticket

        ticket = self.portal.call(append_all)
        self.call(self.journal.wait_committed, ticket)

    def position(self, run_id: str) -> int:
        self.positions[run_id] = self.positions.get(run_id, -1) + 1
        return self.positions[run_id]

    def teardown(self) -> None:
        try:
            self.call(self.journal.close)
            self.call(self.reference.close)
        finally:
            self.portal_cm.__exit__(None, None, None)
            shutil.rmtree(self.directory, ignore_errors=True)

    # -- runs ----------------------------------------------------------------

    @initialize(target=runs, run_id=RUN_IDS, workflow=st.sampled_from(["wf", "agent"]), at=TIMES)
    def first_run(self, run_id: str, workflow: str, at: float) -> str:
        self.start_run(run_id, workflow, at)
        return run_id

    @rule(target=runs, run_id=RUN_IDS, workflow=st.sampled_from(["wf", "agent"]), at=TIMES)
    def start_run(self, run_id: str, workflow: str, at: float) -> str:
        if run_id not in self.started:
            self.started.add(run_id)
            self.status[run_id] = RunStatus.PENDING
            self.append(RunStarted(run_id, workflow=workflow, input=b"\xa2in", at=at))
        return run_id

    @rule(run_id=runs, at=TIMES)
    def resume(self, run_id: str, at: float) -> None:
        if not self.status[run_id].is_terminal:
            self.status[run_id] = RunStatus.RUNNING
        self.append(RunResumed(run_id, at=at))

    @rule(
        run_id=runs,
        status=st.sampled_from(["COMPLETED", "FAILED", "CANCELLED"]),
        at=TIMES,
        output=BLOBS,
        error=ERRORS,
    )
    def finish(self, run_id: str, status: str, at: float, output: bytes, error: ErrorInfo) -> None:
        self.status[run_id] = RunStatus(status)
        self.append(
            RunEnded(
                run_id,
                status=status,
                at=at,
                output=output if status == "COMPLETED" else None,
                error=error if status == "FAILED" else None,
            )
        )

    @rule()
    def reopen(self) -> None:
        """Close the journal under test and open it again: what was committed stays."""
        self.call(self.journal.close)
        self.call(self.journal.open)
        self.bases = (self.journal.committed, self.reference.committed)

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
        self.append(StreamEnded(run_id, key=key, position=position))

    @precondition(lambda self: bool(self.lengths))
    @rule(data=st.data(), from_offset=st.integers(0, 40), limit=st.integers(0, 12))
    def read_stream(self, data: st.DataObject, from_offset: int, limit: int) -> None:
        run_id, key = data.draw(st.sampled_from(sorted(self.lengths)))
        args = (run_id, key, from_offset, limit)
        page = self.call(self.journal.read_stream, *args)
        assert page == self.call(self.reference.read_stream, *args)
        length = self.lengths[run_id, key]
        assert [e.offset for e in page.entries] == list(
            range(from_offset, min(length, from_offset + limit))
        )

    # -- agreement -----------------------------------------------------------

    @invariant()
    def journals_agree(self) -> None:
        base, reference_base = self.bases
        assert self.journal.committed - base == self.reference.committed - reference_base
        answers = self.portal.call(_answers, self.journal)
        assert answers == self.portal.call(_answers, self.reference)

    @invariant()
    def pages_are_the_newest_runs(self) -> None:
        every = self.call(self.journal.list_runs)
        for limit in (1, 2, 10):
            page = self.portal.call(partial(self.journal.page_runs, limit=limit))
            assert page == list(reversed(every))[:limit]
        if every:
            rest = self.portal.call(partial(self.journal.page_runs, before=every[-1].run_id))
            assert rest == list(reversed(every[:-1]))[:50]

    @invariant()
    def journal_matches_the_model(self) -> None:
        for run_id in _RUN_IDS:
            info = self.call(self.journal.get_run, run_id)
            if run_id not in self.status:
                assert info is None, run_id
                continue
            assert info is not None, run_id
            assert info.status == self.status[run_id], (run_id, info)
            streams = {s.key: s for s in self.call(self.journal.list_streams, run_id)}
            for (rid, key), length in self.lengths.items():
                if rid == run_id:
                    assert key in streams, (run_id, key)
                    assert streams[key].length == length, (run_id, key)
                    assert streams[key].closed == ((rid, key) in self.closed), (run_id, key)


async def _answers(journal: Journal) -> list[object]:
    """Everything the read side says about every run id the machine may use."""
    result: list[object] = [await journal.list_runs()]
    result.extend([await journal.list_runs(status) for status in RunStatus])
    result.append(await journal.page_runs(limit=2))
    result.append(await journal.page_runs(RunStatus.RUNNING, limit=3))
    result.append(await journal.page_runs(workflow="wf", before="r2", limit=5))
    result.append(await journal.page_runs(before="no-such-run"))
    for run_id in _RUN_IDS:
        result.append(await journal.get_run(run_id))
        result.append(await journal.load_history(run_id))
        streams = await journal.list_streams(run_id)
        result.append(streams)
        for stream in streams:
            result.append(await journal.read_stream(run_id, stream.key))
            result.append(await journal.read_stream(run_id, stream.key, stream.length - 1, 1))
    return result
