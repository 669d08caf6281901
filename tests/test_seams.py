"""The seams of actorflow.abc: Runtime(clock=, instrument=, broker=) and journal URLs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

import actorflow as af
from actorflow.abc import Clock, Instrument, Journal, LiveBroker
from actorflow.testing import VirtualClock, virtual_time_backend

BACKENDS = ["asyncio", "trio"]


@af.workflow
async def seams_sleeper(ctx: af.WorkflowContext, seconds: float) -> str:
    await ctx.sleep(seconds)
    return "awake"


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_durable_sleep_crashed_midway_wakes_at_its_deadline_in_virtual_time(
    backend: str,
) -> None:
    """A 3600 s sleep interrupted at virtual t=1000 ends at t=3600, not 1000 + 3600."""
    clock = VirtualClock()
    journal = af.MemoryJournal()

    async def first_life() -> None:
        async with af.Runtime(journal, clock=clock) as rt:
            await rt.start(seams_sleeper, 3600.0, run_id="sleeper")
            await anyio.sleep(1000)
            assert clock.elapsed() == pytest.approx(0.0)  # nothing read the clock since
        # Leaving the block is the crash: the run stays unfinished in the journal.

    async def second_life() -> float:
        async with af.Runtime(journal, clock=clock) as rt:
            assert await rt.handle("sleeper").result() == "awake"
            return clock.time() - clock.start

    name, options = virtual_time_backend(backend)
    anyio.run(first_life, backend=name, backend_options=options)
    name, options = virtual_time_backend(backend)
    woke = anyio.run(second_life, backend=name, backend_options=options)
    assert woke == pytest.approx(3600.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_downtime_between_lives_counts_towards_a_durable_sleep(backend: str) -> None:
    clock = VirtualClock()
    journal = af.MemoryJournal()

    async def first_life() -> None:
        async with af.Runtime(journal, clock=clock) as rt:
            await rt.start(seams_sleeper, 3600.0, run_id="sleeper")
            await anyio.sleep(1000)

    async def second_life() -> float:
        async with af.Runtime(journal, clock=clock) as rt:
            await rt.handle("sleeper").result()
            return clock.time() - clock.start

    name, options = virtual_time_backend(backend)
    anyio.run(first_life, backend=name, backend_options=options)
    clock.pass_downtime(5000)  # down past the deadline: it wakes at once
    name, options = virtual_time_backend(backend)
    woke = anyio.run(second_life, backend=name, backend_options=options)
    assert woke == pytest.approx(5000.0, abs=1.0)


class FixedClock:
    """A clock whose wall time is what the test says."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def current_time(self) -> float:
        return anyio.current_time()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


@af.step
async def seams_echo(ctx: af.StepContext, value: int) -> int:
    return value


@af.workflow
async def seams_one_step(ctx: af.WorkflowContext, value: int) -> int:
    return await ctx.step(seams_echo, value)


async def test_records_carry_the_clocks_wall_time() -> None:
    clock = FixedClock(1234.5)
    assert isinstance(clock, Clock)
    async with af.Runtime(clock=clock) as rt:
        handle = await rt.start(seams_one_step, 7)
        assert await handle.result() == 7
        info = await rt.get_run(handle.run_id)
        assert info.started_at == 1234.5
        assert info.finished_at == 1234.5


class Recorder(Instrument):
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def run_started(self, run_id: str, workflow: str, *, resumed: bool) -> None:
        self.calls.append(("run_started", workflow, resumed))

    def run_finished(
        self, run_id: str, workflow: str, status: str, error: af.records.ErrorInfo | None
    ) -> None:
        self.calls.append(("run_finished", workflow, status, error and error.type))

    def step_started(self, run_id: str, step_id: str, attempt: int) -> None:
        self.calls.append(("step_started", step_id, attempt))

    def step_failed(
        self, run_id: str, step_id: str, attempt: int, error: BaseException, retry_in: float | None
    ) -> None:
        self.calls.append(("step_failed", step_id, attempt, type(error).__name__, retry_in))

    def step_finished(self, run_id: str, step_id: str, attempt: int) -> None:
        self.calls.append(("step_finished", step_id, attempt))

    def stream_written(self, run_id: str, key: str, offset: int, step_id: str) -> None:
        self.calls.append(("stream_written", key, offset, step_id))

    def stream_closed(self, run_id: str, key: str) -> None:
        self.calls.append(("stream_closed", key))


_flaky_attempts: list[int] = []


@af.step(retries=2, backoff=af.Backoff(initial=0.5, factor=2.0, jitter=0.0))
async def seams_flaky(ctx: af.StepContext, fail_times: int) -> str:
    await ctx.write_stream("log", ctx.attempt)
    if ctx.attempt <= fail_times:
        raise ValueError(f"attempt {ctx.attempt}")
    return "ok"


@af.workflow
async def seams_flaky_flow(ctx: af.WorkflowContext, fail_times: int) -> str:
    result = await ctx.step(seams_flaky, fail_times)
    await ctx.close_stream("log")
    return result


@pytest.mark.virtual_time
async def test_an_instrument_sees_runs_attempts_retries_and_streams() -> None:
    recorder = Recorder()
    async with af.Runtime(instrument=recorder) as rt:
        assert await rt.run(seams_flaky_flow, 1) == "ok"
    assert recorder.calls == [
        ("run_started", "seams_flaky_flow", False),
        ("step_started", "seams_flaky", 1),
        ("stream_written", "log", 0, "seams_flaky"),
        ("step_failed", "seams_flaky", 1, "ValueError", 0.5),
        ("step_started", "seams_flaky", 2),
        ("stream_written", "log", 1, "seams_flaky"),
        ("step_finished", "seams_flaky", 2),
        ("stream_closed", "log"),
        ("run_finished", "seams_flaky_flow", "COMPLETED", None),
    ]


@pytest.mark.virtual_time
async def test_a_step_that_gives_up_reports_no_retry() -> None:
    recorder = Recorder()
    async with af.Runtime(instrument=recorder) as rt:
        with pytest.raises(af.RunFailed):
            await rt.run(seams_flaky_flow, 5)
    failures = [c for c in recorder.calls if c[0] == "step_failed"]
    assert [c[4] for c in failures] == [0.5, 1.0, None]
    assert recorder.calls[-1] == (
        "run_finished",
        "seams_flaky_flow",
        "FAILED",
        "actorflow.StepFailed",
    )


class Broken(Instrument):
    def run_started(self, run_id: str, workflow: str, *, resumed: bool) -> None:
        raise RuntimeError("a broken instrument")

    def committed(self, ticket: int) -> None:
        raise RuntimeError("a broken instrument")


async def test_a_broken_instrument_only_logs(caplog: pytest.LogCaptureFixture) -> None:
    async with af.Runtime(instrument=Broken()) as rt:
        assert await rt.run(seams_one_step, 3) == 3
    assert "instrument hook run_started failed" in caplog.text


async def test_an_instrument_that_is_not_one_is_refused() -> None:
    with pytest.raises(af.ValidationError, match=r"not an actorflow\.abc\.Instrument"):
        af.Runtime(instrument=object())  # type: ignore[arg-type]


class CountingBroker(af._live.Broker):
    """The in-process broker, counting what it is asked."""

    def __init__(self) -> None:
        super().__init__()
        self.publishers = 0

    def publisher(self, run_id: str, step_id: str) -> Any:
        self.publishers += 1
        return super().publisher(run_id, step_id)


@af.workflow
async def seams_talker(ctx: af.WorkflowContext, n: int) -> int:
    for i in range(n):
        await ctx.put_stream(i)
    return n


async def test_the_runtime_publishes_through_the_broker_it_is_given() -> None:
    broker = CountingBroker()
    assert isinstance(broker, LiveBroker)
    async with af.Runtime(broker=broker) as rt:
        assert rt.broker is broker
        async with rt.subscribe("stream.*.main") as sub:
            handle = await rt.start(seams_talker, 3)
            got = []
            async for msg in sub:
                got.append(msg.data)
                if len(got) == 3:
                    break
        await handle.result()
    assert got == [0, 1, 2]
    assert broker.publishers == 1


async def test_journal_urls(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    async with af.Runtime(f"sqlite:///{path}") as rt:
        assert isinstance(rt.journal, af.SQLiteJournal)
        assert await rt.run(seams_one_step, 1) == 1
    assert path.exists()
    with pytest.raises(af.ValidationError, match="Postgres"):
        af.Runtime("postgresql://user:secret@db/actorflow")
    with pytest.raises(af.ValidationError) as excinfo:
        af.Runtime("postgresql://user:secret@db/actorflow")
    assert "secret" not in str(excinfo.value)
    with pytest.raises(af.ValidationError, match="scheme 'redis'"):
        af.Runtime("redis://localhost")
    with pytest.raises(af.ValidationError, match="takes None, a path"):
        af.Runtime(42)  # type: ignore[arg-type]


def test_both_journals_declare_their_capabilities(tmp_path: Path) -> None:
    for journal in (af.MemoryJournal(), af.SQLiteJournal(tmp_path / "j.db")):
        assert isinstance(journal, Journal)
        assert journal.readonly is False
    assert af.SQLiteJournal(tmp_path / "j.db", readonly=True).readonly is True
