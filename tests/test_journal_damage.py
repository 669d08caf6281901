"""A damaged journal file: every read path raises JournalError naming the run, never hangs.

The rows are damaged with plain sqlite3 UPDATEs on a closed journal file, as a
disk fault, a bad restore or a hand edit would leave them.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import anyio
import msgspec
import pytest

import actorflow as af
from actorflow._cli import main as cli_main
from actorflow._history import fold
from actorflow._journals._sqlite import SQLiteJournal
from actorflow.records import StepCompleted, record_decoder, record_encoder


@af.step
async def shout(ctx: af.StepContext, text: str) -> str:
    await ctx.write_stream("out", text)
    return text.upper()


@af.workflow
async def damaged_wf(ctx: af.WorkflowContext, text: str) -> str:
    await ctx.write_stream("log", "begin")
    return await ctx.step(shout, text)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A closed journal with one completed run, "r"."""
    path = tmp_path / "j.db"

    async def run() -> None:
        async with af.Runtime(path) as rt:
            assert await rt.run(damaged_wf, "hi", run_id="r") == "HI"

    anyio.run(run)
    return path


@contextlib.contextmanager
def edit(path: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


def _move_step_completed(path: Path) -> None:
    with edit(path) as conn:
        for seq, body in conn.execute("SELECT seq, body FROM records").fetchall():
            record = record_decoder.decode(body)
            if isinstance(record, StepCompleted):
                moved = msgspec.structs.replace(record, position=record.position + 7)
                conn.execute(
                    "UPDATE records SET body = ? WHERE seq = ?", (record_encoder.encode(moved), seq)
                )


async def _reader(path: Path) -> SQLiteJournal:
    journal = SQLiteJournal(path, readonly=True)
    await journal.open()
    return journal


def _cli(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli_main([*argv])
    return code, capsys.readouterr().err


async def test_a_step_record_moved_to_another_position_is_a_journal_error(db: Path) -> None:
    _move_step_completed(db)
    journal = await _reader(db)
    history = await journal.load_history("r")
    await journal.close()
    with pytest.raises(af.JournalError, match=r"run 'r'.*StepCompleted.*position 8"):
        fold(history)


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("status", "EXPLODED", "status 'EXPLODED'"),
        ("status", 7, "status '7'"),
        ("started_at", "noon", "started_at"),
        ("input", 5, "input"),
        ("error", b"\xc1", "error"),
    ],
)
async def test_a_damaged_runs_row_is_a_journal_error_naming_the_run(
    db: Path, column: str, value: object, reason: str
) -> None:
    with edit(db) as conn:
        conn.execute(f"UPDATE runs SET {column} = ?", (value,))
    journal = await _reader(db)
    try:
        for read in (
            journal.list_runs,
            lambda: journal.get_run("r"),
            lambda: journal.load_history("r"),
        ):
            with pytest.raises(af.JournalError, match=rf"run 'r'.*{reason}"):
                await read()
    finally:
        await journal.close()


@pytest.mark.parametrize("body", [12345, "text", b"\xc1", None])
async def test_a_record_that_is_not_a_record_is_a_journal_error(db: Path, body: object) -> None:
    with edit(db) as conn:
        if body is None:  # a record of another run in the chain
            (old,) = conn.execute("SELECT body FROM records WHERE seq = 2").fetchone()
            other = msgspec.structs.replace(record_decoder.decode(old), run_id="other")
            conn.execute(
                "UPDATE records SET body = ? WHERE seq = 2", (record_encoder.encode(other),)
            )
        else:
            conn.execute("UPDATE records SET body = ? WHERE seq = 2", (body,))
    journal = await _reader(db)
    try:
        with pytest.raises(af.JournalError, match=r"run 'r'"):
            await journal.load_history("r")
    finally:
        await journal.close()


@pytest.mark.timeout(10)
async def test_a_record_chain_with_a_loop_is_a_journal_error(db: Path) -> None:
    with edit(db) as conn:
        conn.execute("UPDATE records SET prev = (SELECT max(seq) FROM records) WHERE seq = 1")
    journal = await _reader(db)
    try:
        with pytest.raises(af.JournalError, match=r"chain of run 'r' is broken"):
            await journal.load_history("r")  # and does not loop forever
    finally:
        await journal.close()


@pytest.mark.parametrize(
    ("column", "value"),
    [("value", 5), ("value", b"\xc1"), ("step_id", b"\x00"), ("attempt", "one"), ('"offset"', "x")],
)
async def test_a_damaged_stream_entry_is_a_journal_error(
    db: Path, column: str, value: object
) -> None:
    with edit(db) as conn:
        conn.execute(f"UPDATE stream_entries SET {column} = ?", (value,))
    journal = await _reader(db)
    try:
        with pytest.raises(af.JournalError, match=r"run 'r'"):
            await journal.read_stream("r", "out")
    finally:
        await journal.close()


async def test_a_damaged_output_makes_result_raise_a_journal_error(db: Path) -> None:
    with edit(db) as conn:
        conn.execute("UPDATE runs SET output = x'c1'")
    async with af.Runtime(db) as rt:
        with pytest.raises(af.JournalError, match="'r'"):
            await rt.handle("r").result()


@pytest.mark.parametrize(
    "damage",
    [
        "UPDATE runs SET status = 'EXPLODED'",
        "UPDATE records SET body = 12345 WHERE seq = 2",
        "move",
    ],
)
@pytest.mark.parametrize("command", ["show", "logs", "runs"])
def test_the_cli_reports_a_damaged_journal_in_one_line(
    db: Path, damage: str, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if damage == "move":
        _move_step_completed(db)
    else:
        with edit(db) as conn:
            conn.execute(damage)
    argv = [command, "--db", str(db)] + ([] if command == "runs" else ["r"])
    code, err = _cli(*argv, capsys=capsys)
    if code == 0 and command != "show" and "status" not in damage:  # it reads nothing damaged
        assert err == ""
        return
    assert code == 1, err
    assert err.count("\n") == 1, err
    assert "run 'r'" in err, err


async def test_a_stream_longer_than_its_entries_ends_for_a_reader(db: Path) -> None:
    with edit(db) as conn:
        conn.execute("UPDATE streams SET length = length + 1")
    journal = await _reader(db)
    try:
        with anyio.fail_after(5):
            page = await journal.read_stream("r", "out")
            assert [e.value for e in page.entries] == ["hi"]
            page = await journal.read_stream("r", "out", 1)
            assert page.closed
    finally:
        await journal.close()
    async with af.Runtime(db) as rt:
        with anyio.fail_after(5):
            assert [v async for v in rt.read_stream("r", "out")] == ["hi"]
            assert [v async for v in rt.read_stream("r", "log")] == ["begin"]


def test_logs_tail_of_a_damaged_stream_of_a_finished_run_ends(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with edit(db) as conn:
        conn.execute("UPDATE streams SET length = length + 1")
    codes: list[int] = []
    tail = threading.Thread(
        target=lambda: codes.append(cli_main(["logs", "--db", str(db), "r", "--tail"])), daemon=True
    )
    tail.start()
    tail.join(10)  # the CLI runs its own event loop: bounded from outside
    assert not tail.is_alive(), "logs --tail kept waiting for an entry that never comes"
    assert codes == [0], capsys.readouterr().err


async def test_a_damaged_unfinished_run_is_left_alone_and_the_others_resume(
    db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Recovery logs the run it cannot read and resumes every other."""
    _move_step_completed(db)
    with edit(db) as conn:  # make both runs look unfinished: "r" damaged, "r2" intact
        conn.execute("UPDATE runs SET status = 'RUNNING', finished_at = NULL, output = NULL")
    async with af.Runtime(db) as rt:
        await rt.start(damaged_wf, "again", run_id="r2")
    with edit(db) as conn:
        conn.execute("UPDATE runs SET status = 'RUNNING' WHERE run_id = 'r2'")
    async with af.Runtime(db) as rt:
        assert await rt.handle("r2").result() == "AGAIN"
        assert await rt.handle("r").status() is af.RunStatus.RUNNING
    assert "run 'r' is not resumed" in caplog.text
