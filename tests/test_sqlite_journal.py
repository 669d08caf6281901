"""SQLiteJournal: durability, group commit, locking, file checks and readonly followers."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
import tempfile
import textwrap
import threading
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import actorflow as af
from actorflow._journals._sqlite import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    SQLiteJournal,
)
from actorflow._journals._sqlite._batch import BatchWriter
from actorflow.abc import Journal, StreamPage
from actorflow.records import (
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

BOOM = ErrorInfo("ValueError", "boom", "Traceback ...")


def every_kind(run_id: str = "r1") -> list[Record]:
    """One record of each kind, in an order a runtime could append them."""
    return [
        RunStarted(run_id, workflow="wf", input=b"\xa2hi", at=1.0),
        RunResumed(run_id, at=1.5),
        StepStarted(run_id, position=0, step_id="fetch", name="fetch", attempt=1, at=2.0),
        StreamWrite(run_id, key="tokens", offset=0, value=b"\x01", step_id="fetch", attempt=1),
        StepCheckpoint(run_id, position=0, attempt=1, value=b"\x05"),
        StepAttemptFailed(run_id, position=0, attempt=1, error=BOOM, at=2.5),
        StepStarted(run_id, position=0, step_id="fetch", name="fetch", attempt=2, at=3.0),
        StreamWrite(run_id, key="tokens", offset=1, value=b"\x02", step_id="fetch", attempt=2),
        StepCompleted(run_id, position=0, attempt=2, output=b"\xa2ok", at=3.5),
        StepStarted(run_id, position=1, step_id="parse", name="parse", attempt=1, at=4.0),
        StepGaveUp(run_id, position=1, attempts=1, error=BOOM, at=4.5),
        StreamWrite(
            run_id, key="log", offset=0, value=b"\xa1x", step_id="main", attempt=1, position=2
        ),
        StreamEnded(run_id, key="log", position=3),
        StreamEnded(run_id, key="empty", position=4),
        RunEnded(run_id, status="FAILED", at=5.0, error=BOOM),
    ]


async def snapshot(journal: Journal, run_ids: list[str]) -> object:
    """Everything the read side of a journal says about ``run_ids``."""
    result: list[object] = [await journal.list_runs()]
    for status in af.RunStatus:
        result.append(await journal.list_runs(status))
    for run_id in [*run_ids, "nope"]:
        result.append(await journal.get_run(run_id))
        result.append(await journal.load_history(run_id))
        streams = await journal.list_streams(run_id)
        result.append(streams)
        for stream in [*streams, af.StreamInfo("missing", 0, False)]:
            for offset, limit in [(0, 1000), (0, 1), (1, 1), (1, 0), (5, 10)]:
                result.append(await journal.read_stream(run_id, stream.key, offset, limit))
    return result


async def fill(journal: Journal, records: list[Record]) -> None:
    ticket = 0
    for record in records:
        ticket = journal.append(record)
    await journal.wait_committed(ticket)


async def test_round_trip_of_every_record_kind_agrees_with_memory(tmp_path: Path) -> None:
    records = every_kind("r1") + every_kind("r2")[:6]
    memory = af.MemoryJournal()
    await memory.open()
    await fill(memory, records)
    journal = SQLiteJournal(tmp_path / "j.db")
    assert isinstance(journal, Journal)
    await journal.open()
    await fill(journal, records)
    assert journal.committed == len(records)
    assert await snapshot(journal, ["r1", "r2"]) == await snapshot(memory, ["r1", "r2"])

    history = await journal.load_history("r1")
    assert history is not None
    assert history.records == [
        r for r in records[:15] if not (isinstance(r, StreamWrite) and r.position is None)
    ]
    assert history.stream_lengths == {"tokens": 2, "log": 1}
    assert history.info.status is af.RunStatus.FAILED
    assert history.info.error == BOOM
    page = await journal.read_stream("r1", "tokens")
    assert [(e.offset, e.value, e.step_id, e.attempt) for e in page.entries] == [
        (0, 1, "fetch", 1),
        (1, 2, "fetch", 2),
    ]
    assert page.closed  # the run ended
    await journal.close()


def _downgrade_to_version_1(path: Path) -> None:
    """Rewrite a journal in the layout of schema version 1: records indexed by run, no chain."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(
        """
        ALTER TABLE runs DROP COLUMN last_record;
        ALTER TABLE records DROP COLUMN prev;
        CREATE INDEX records_by_run ON records (run_id, seq);
        PRAGMA user_version = 1;
        """
    )
    conn.close()


async def test_a_version_1_journal_is_read_then_upgraded_by_a_writer(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    # Interleaved runs, and a run started again under the same id (its records reset).
    records = [*every_kind("r1")[:3], *every_kind("r2")[:5], *every_kind("r1")[3:]]
    records += [*every_kind("r3")[:4], RunStarted("r3", workflow="wf", input=b"\xc0", at=6.0)]
    memory = af.MemoryJournal()
    await memory.open()
    await fill(memory, records)
    expected = await snapshot(memory, ["r1", "r2", "r3"])
    journal = SQLiteJournal(path)
    await journal.open()
    await fill(journal, records)
    await journal.close()
    _downgrade_to_version_1(path)

    reader = SQLiteJournal(path, readonly=True)
    await reader.open()
    assert await snapshot(reader, ["r1", "r2", "r3"]) == expected
    await reader.close()

    writer = SQLiteJournal(path)
    await writer.open()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'").fetchall() == [
            ("sqlite_autoindex_runs_1",),
            ("sqlite_autoindex_streams_1",),
        ]
    conn.close()
    assert await snapshot(writer, ["r1", "r2", "r3"]) == expected
    more = every_kind("r2")[5:]
    await fill(writer, more)
    await fill(memory, more)
    assert await snapshot(writer, ["r1", "r2", "r3"]) == await snapshot(memory, ["r1", "r2", "r3"])
    await writer.close()


async def test_data_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    records = every_kind("r1") + every_kind("r2")[:8]
    journal = SQLiteJournal(path)
    await journal.open()
    await fill(journal, records)
    before = await snapshot(journal, ["r1", "r2"])
    await journal.close()

    again = SQLiteJournal(str(path), synchronous="full")
    await again.open()
    assert again.committed == 0  # tickets count from each open
    assert await snapshot(again, ["r1", "r2"]) == before
    ticket = again.append(RunEnded("r2", status="COMPLETED", at=9.0, output=b"\xc0"))
    assert ticket == 1
    await again.wait_committed(ticket)
    info = await again.get_run("r2")
    assert info is not None
    assert info.status is af.RunStatus.COMPLETED
    assert [r.run_id for r in await again.list_runs()] == ["r1", "r2"]
    await again.close()


async def test_group_commit_batches_appends(tmp_path: Path) -> None:
    journal = SQLiteJournal(tmp_path / "j.db")
    await journal.open()
    ticket = journal.append(RunStarted("r", workflow="wf", input=b"\xc0", at=0.0))
    for i in range(20_000):
        ticket = journal.append(
            StreamWrite("r", key="k", offset=i, value=b"\x01", step_id="s", attempt=1)
        )
    await journal.wait_committed(ticket)
    stats = journal.statistics()
    assert stats.appends == stats.records == 20_001
    assert stats.commits <= 200  # thousands of records per transaction, not one each
    assert stats.largest_batch >= 100
    assert (await journal.list_streams("r")) == [af.StreamInfo("k", 20_000, False)]
    await journal.close()


async def test_close_commits_what_was_queued(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    journal = SQLiteJournal(path)
    await journal.open()
    journal.append(RunStarted("r", workflow="wf", input=b"\xc0", at=0.0))
    for i in range(3000):
        last = journal.append(
            StreamWrite("r", key="k", offset=i, value=b"\x01", step_id="main", attempt=1)
        )
    await journal.close()
    assert journal.committed == last
    with pytest.raises(af.JournalError, match="not open"):
        journal.append(RunResumed("r", at=1.0))

    reader = SQLiteJournal(path, readonly=True)
    await reader.open()
    page = await reader.read_stream("r", "k", 0, 5000)
    assert [e.offset for e in page.entries] == list(range(3000))
    await reader.close()


async def test_second_writer_in_the_same_process_is_locked_out(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    first = SQLiteJournal(path)
    await first.open()
    os.symlink(path, tmp_path / "alias.db")
    for other in (path, tmp_path / "alias.db", tmp_path / "." / "j.db"):
        with pytest.raises(af.JournalLocked, match=r"another runtime.*readonly=True"):
            await SQLiteJournal(other).open()
    reader = SQLiteJournal(path, readonly=True)  # readers are welcome meanwhile
    await reader.open()
    await reader.close()
    await first.close()
    second = SQLiteJournal(path)
    await second.open()
    await second.close()


async def _locked_out(path: Path) -> None:
    with pytest.raises(af.JournalLocked, match=r"another runtime.*same file.*readonly=True"):
        await SQLiteJournal(path).open()


async def test_a_hard_link_to_a_written_journal_is_locked_out(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    first = SQLiteJournal(path)
    await first.open()
    await fill(first, [RunStarted("r", workflow="wf", input=b"\xc0", at=0.0)])
    os.link(path, tmp_path / "link.db")
    await _locked_out(tmp_path / "link.db")
    await fill(first, [entry(0)])
    await first.close()
    again = SQLiteJournal(tmp_path / "link.db")  # released: the link opens now
    await again.open()
    assert (await again.read_stream("r", "k")).entries[0].offset == 0
    await again.close()


async def test_a_renamed_journal_is_still_locked(tmp_path: Path) -> None:
    first = SQLiteJournal(tmp_path / "j.db")
    await first.open()
    await fill(first, [RunStarted("r", workflow="wf", input=b"\xc0", at=0.0)])
    os.rename(tmp_path / "j.db", tmp_path / "moved.db")
    await _locked_out(tmp_path / "moved.db")
    # A runtime opening the old path would start a journal of its own.
    with pytest.raises(af.JournalError, match="moved or replaced"):
        await first.close()
    again = SQLiteJournal(tmp_path / "moved.db")  # the close checkpointed into it
    await again.open()
    assert await again.get_run("r") is not None
    await again.close()


async def test_deleting_the_lock_file_does_not_let_a_second_writer_in(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    first = SQLiteJournal(path)
    await first.open()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp_path / "j.db-lock")
    await _locked_out(path)
    await first.close()


async def test_a_reader_of_the_same_file_outlives_the_writer(tmp_path: Path) -> None:
    # The writer's lock descriptor stays open while a reader of this process
    # uses the file (closing it would drop SQLite's own locks of the process).
    path = tmp_path / "j.db"
    writer = SQLiteJournal(path)
    await writer.open()
    reader = SQLiteJournal(tmp_path / "." / "j.db", readonly=True)
    await reader.open()
    await fill(writer, [RunStarted("r", workflow="wf", input=b"\xc0", at=0.0), entry(0)])
    await writer.close()
    assert [e.offset for e in (await reader.read_stream("r", "k")).entries] == [0]
    again = SQLiteJournal(path)
    await again.open()
    await fill(again, [entry(1)])
    assert [e.offset for e in (await reader.read_stream("r", "k")).entries] == [0, 1]
    await again.close()
    await reader.close()


@pytest.mark.parametrize(
    ("how", "reason"), [("delete", "deleted"), ("replace", "replaced by another file")]
)
async def test_a_journal_deleted_while_written_fails_the_journal(
    tmp_path: Path, how: str, reason: str
) -> None:
    path = tmp_path / "j.db"
    journal = SQLiteJournal(path)
    await journal.open()
    await fill(journal, [RunStarted("r", workflow="wf", input=b"\xc0", at=0.0)])
    if how == "delete":
        path.unlink()
    else:
        (tmp_path / "other").write_bytes(b"")
        os.replace(tmp_path / "other", path)
    with pytest.raises(af.JournalError, match=reason):  # noqa: PT012
        for i in range(100):  # the file is checked every few commits
            await fill(journal, [entry(i)])
    with pytest.raises(af.JournalError, match=reason):
        await journal.close()


async def test_a_journal_deleted_just_before_close_fails_the_close(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    journal = SQLiteJournal(path)
    await journal.open()
    await fill(journal, [RunStarted("r", workflow="wf", input=b"\xc0", at=0.0)])
    path.unlink()
    with pytest.raises(af.JournalError, match="deleted"):
        await journal.close()


async def test_a_cleanly_closed_journal_is_one_self_contained_file(tmp_path: Path) -> None:
    journal = SQLiteJournal(tmp_path / "j.db")
    await journal.open()
    await fill(journal, every_kind("r1"))
    await fill(journal, [RunStarted("r", workflow="wf", input=b"\xc0", at=0.0)])
    await fill(journal, [entry(i) for i in range(500)])
    reader = SQLiteJournal(tmp_path / "j.db", readonly=True)  # a reader does not hold it up
    await reader.open()
    assert await reader.get_run("r") is not None
    await journal.close()
    wal = tmp_path / "j.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "j.db").write_bytes((tmp_path / "j.db").read_bytes())  # the .db alone
    copy = SQLiteJournal(tmp_path / "copy" / "j.db", readonly=True)
    await copy.open()
    assert [r.run_id for r in await copy.list_runs()] == ["r1", "r"]
    assert len((await copy.read_stream("r", "k", 0, 1000)).entries) == 500
    history = await copy.load_history("r1")
    assert history is not None
    assert history.info.status is af.RunStatus.FAILED
    await copy.close()
    await reader.close()


def _script(body: str) -> list[str]:
    prelude = "import sys, anyio\nfrom actorflow._journals._sqlite import SQLiteJournal\n"
    return [sys.executable, "-c", prelude + textwrap.dedent(body)]


@pytest.mark.slow
async def test_second_writer_in_another_process_is_locked_out(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    journal = SQLiteJournal(path)
    await journal.open()
    probe = _script(
        """
        import actorflow as af
        async def main():
            try:
                await SQLiteJournal(sys.argv[1]).open()
            except af.JournalLocked as exc:
                print("locked:", exc)
            else:
                print("opened")
        anyio.run(main)
        """
    )
    result = await anyio.run_process([*probe, str(path)])
    assert result.stdout.decode().startswith("locked:")
    with contextlib.suppress(FileNotFoundError):  # the lock is the file's, whatever its name
        os.unlink(tmp_path / "j.db-lock")
    result = await anyio.run_process([*probe, str(path)])
    assert result.stdout.decode().startswith("locked:")
    os.link(path, tmp_path / "link.db")
    result = await anyio.run_process([*probe, str(tmp_path / "link.db")])
    assert result.stdout.decode().startswith("locked:")
    await journal.close()
    result = await anyio.run_process([*probe, str(path)])
    assert result.stdout.decode().strip() == "opened"


@pytest.mark.slow
async def test_readonly_follows_a_writer_in_another_process(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    setup = SQLiteJournal(path)
    await setup.open()
    await fill(setup, [RunStarted("r", workflow="wf", input=b"\xc0", at=0.0)])
    await setup.close()

    reader = SQLiteJournal(path, readonly=True)
    await reader.open()
    writer = _script(
        """
        import time
        from actorflow.records import RunEnded, StreamWrite
        async def main():
            journal = SQLiteJournal(sys.argv[1])
            await journal.open()
            for i in range(200):
                t = journal.append(
                    StreamWrite("r", key="k", offset=i, value=bytes([i % 100]),
                                step_id="main", attempt=1)
                )
                if i % 20 == 0:
                    await journal.wait_committed(t)
                    await anyio.sleep(0.01)
            journal.append(RunEnded("r", status="COMPLETED", at=1.0, output=b"\\xc0"))
            await journal.close()
        anyio.run(main)
        """
    )
    seen: list[object] = []
    pages = 0
    async with await anyio.open_process([*writer, str(path)]) as process:
        with anyio.fail_after(30):
            while True:
                seen_before = reader.committed
                page: StreamPage = await reader.read_stream("r", "k", len(seen))
                seen.extend(e.value for e in page.entries)
                pages += 1
                if page.closed:
                    break
                await reader.wait_for_commit(seen_before)
        assert await process.wait() == 0
    assert seen == [i % 100 for i in range(200)]
    assert pages > 2  # it followed the writer, rather than reading it all at the end
    info = await reader.get_run("r")
    assert info is not None
    assert info.status is af.RunStatus.COMPLETED
    with pytest.raises(af.JournalError, match="readonly"):
        reader.append(RunResumed("r", at=2.0))
    await reader.close()


async def test_readonly_follows_a_writer_in_this_process(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    writer = SQLiteJournal(path)
    await writer.open()
    await fill(writer, [RunStarted("r", workflow="wf", input=b"\xc0", at=0.0)])
    reader = SQLiteJournal(path, readonly=True)
    await reader.open()
    before = reader.committed
    await fill(writer, [RunResumed("r", at=1.0)])
    with anyio.fail_after(5):
        assert await reader.wait_for_commit(before) > before
    info = await reader.get_run("r")
    assert info is not None
    assert info.status is af.RunStatus.RUNNING
    await reader.close()
    await writer.close()


async def test_missing_and_empty_files_become_journals(tmp_path: Path) -> None:
    (tmp_path / "empty.db").write_bytes(b"")
    for name in ("missing.db", "empty.db"):
        journal = SQLiteJournal(tmp_path / name)
        await journal.open()
        await fill(journal, [RunStarted("r", workflow="wf", input=b"\xc0", at=0.0)])
        await journal.close()
        with sqlite3.connect(tmp_path / name) as conn:
            assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
            assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        conn.close()


async def test_readonly_needs_an_existing_journal(tmp_path: Path) -> None:
    (tmp_path / "empty.db").write_bytes(b"")
    for name in ("missing.db", "empty.db"):
        with pytest.raises(af.JournalError, match="no journal at"):
            await SQLiteJournal(tmp_path / name, readonly=True).open()
    assert not (tmp_path / "missing.db").exists()


def _names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def _foreign_db(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.execute("INSERT INTO notes VALUES ('mine')")
    conn.commit()
    conn.close()


@pytest.mark.parametrize("readonly", [False, True])
@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: p.write_bytes(os.urandom(4096)), "not an SQLite database"),
        (lambda p: p.write_bytes(b"SQLite format 3\x00"), "not an SQLite database"),
        (_foreign_db, "another application"),
    ],
    ids=["random-bytes", "truncated-header", "foreign-sqlite"],
)
async def test_a_file_that_is_not_a_journal_is_refused_untouched(
    tmp_path: Path, make: object, reason: str, readonly: bool
) -> None:
    path = tmp_path / "other.db"
    make(path)  # type: ignore[operator]
    before = path.read_bytes()
    with pytest.raises(af.JournalError, match=reason):
        await SQLiteJournal(path, readonly=readonly).open()
    assert path.read_bytes() == before
    assert _names(tmp_path) == ["other.db"]  # no side files (lock, WAL) either


async def test_a_journal_from_a_newer_version_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    journal = SQLiteJournal(path)
    await journal.open()
    await fill(journal, [RunStarted("r", workflow="wf", input=b"\xc0", at=0.0)])
    await journal.close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    before = path.read_bytes()
    for readonly in (False, True):
        with pytest.raises(
            af.JournalError, match=rf"newer actorflow.*version {SCHEMA_VERSION + 1}"
        ):
            await SQLiteJournal(path, readonly=readonly).open()
    assert path.read_bytes() == before


async def test_writer_failure_reaches_waiters_and_later_appends(tmp_path: Path) -> None:
    journal = SQLiteJournal(tmp_path / "j.db")
    await journal.open()
    await fill(journal, [RunStarted("r", workflow="wf", input=b"\xc0", at=0.0)])
    write = StreamWrite("r", key="k", offset=0, value=b"\x01", step_id="main", attempt=1)
    journal.append(write)
    ticket = journal.append(write)  # a duplicate offset: the batch cannot be written
    with pytest.raises(af.JournalError, match="writer failed"):
        await journal.wait_committed(ticket)
    with pytest.raises(af.JournalError, match="failed"):
        journal.append(write)
    with pytest.raises(af.JournalError, match="writer failed"):
        await journal.close()
    again = SQLiteJournal(tmp_path / "j.db")  # the lock was released; nothing half-written
    await again.open()
    assert len((await again.read_stream("r", "k")).entries) <= 1  # never the duplicate
    await again.close()


async def test_options_and_repr(tmp_path: Path) -> None:
    with pytest.raises(af.ValidationError, match="synchronous"):
        SQLiteJournal(tmp_path / "j.db", synchronous="off")  # type: ignore[arg-type]
    journal = SQLiteJournal(tmp_path / "j.db", synchronous="full")
    assert repr(journal) == (
        f"SQLiteJournal(path={str(tmp_path / 'j.db')!r}, synchronous='full', readonly=False)"
    )
    with pytest.raises(af.JournalError, match="not open"):
        await journal.get_run("r")
    await journal.open()
    with pytest.raises(af.JournalError, match="already open"):
        await journal.open()
    with pytest.raises(af.ValidationError, match="RunStatus"):
        journal.append(RunEnded("r", status="DONE", at=1.0))
    await journal.close()
    await journal.close()  # idempotent


# -- inline commits: small batches in the loop's thread, big ones in the writer thread --


def entry(offset: int) -> StreamWrite:
    return StreamWrite("r", key="k", offset=offset, value=b"\x01", step_id="main", attempt=1)


async def test_a_small_batch_commits_inline_and_a_big_one_in_the_writer_thread(
    tmp_path: Path,
) -> None:
    journal = SQLiteJournal(tmp_path / "j.db")
    await journal.open()
    await fill(journal, [RunStarted("r", workflow="wf", input=b"\xc0", at=0.0)])
    before = journal.statistics()
    await fill(journal, [entry(0), entry(1)])  # a sequential step's two records
    small = journal.statistics()
    assert (small.commits, small.inline_commits) == (before.commits + 1, before.inline_commits + 1)
    await fill(journal, [entry(i) for i in range(2, 1002)])
    big = journal.statistics()
    assert (big.commits, big.inline_commits) == (small.commits + 1, small.inline_commits)
    assert big.records == 1003
    await journal.close()
    reader = SQLiteJournal(tmp_path / "j.db", readonly=True)
    await reader.open()
    page = await reader.read_stream("r", "k", 0, 5000)
    assert [e.offset for e in page.entries] == list(range(1002))
    await reader.close()


async def test_synchronous_full_never_commits_inline(tmp_path: Path) -> None:
    journal = SQLiteJournal(tmp_path / "j.db", synchronous="full")
    await journal.open()
    await fill(journal, [RunStarted("r", workflow="wf", input=b"\xc0", at=0.0)])
    for i in range(5):
        await fill(journal, [entry(i)])
    stats = journal.statistics()
    assert (stats.commits, stats.inline_commits) == (6, 0)  # an fsync never blocks the loop
    await journal.close()


async def test_the_checkpoint_thread_bounds_the_wal_of_inline_commits(tmp_path: Path) -> None:
    # SQLite's automatic checkpoint is off (it would fsync inside an inline
    # commit); without the checkpoint thread, 3,000 commits would leave a WAL of
    # ~6,600 pages (27 MB).
    path = tmp_path / "j.db"
    journal = SQLiteJournal(path)
    await journal.open()
    await fill(journal, [RunStarted("r", workflow="wf", input=b"\xc0", at=0.0)])
    for i in range(0, 6000, 2):
        await fill(journal, [entry(i), entry(i + 1)])
    assert journal.statistics().inline_commits >= 2500
    # Well under the ~6,600 pages of no checkpoint at all, with room for a
    # checkpoint thread that a loaded machine schedules late.
    assert (tmp_path / "j.db-wal").stat().st_size < 4000 * 4096
    await journal.close()


class HeldCheckpointer:
    """A checkpoint connection whose first checkpoint waits until released."""

    def __init__(self, conn: sqlite3.Connection, lock: Any) -> None:
        self.conn, self.lock = conn, lock
        self.copying, self.release = threading.Event(), threading.Event()
        self.done = threading.Event()
        self.locked: list[bool] = []  # whether commits were held off, per call

    def execute(self, sql: str) -> sqlite3.Cursor:
        self.locked.append(self.lock.locked())
        if len(self.locked) == 1:
            self.copying.set()
            self.release.wait()
        cursor = self.conn.execute(sql)
        if len(self.locked) == 2:
            self.done.set()
        return cursor

    def close(self) -> None:
        self.conn.close()


async def test_commits_go_on_inline_while_the_checkpoint_copies_the_wal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = SQLiteJournal(tmp_path / "j.db")
    held: list[HeldCheckpointer] = []
    connect = BatchWriter.connect_checkpointer

    def connect_held(writer: BatchWriter) -> Any:
        assert journal._writer is not None
        held.append(HeldCheckpointer(connect(writer), journal._writer.lock))
        return held[-1]

    monkeypatch.setattr(BatchWriter, "connect_checkpointer", connect_held)
    await journal.open()
    await fill(journal, [RunStarted("r", workflow="wf", input=b"\xc0", at=0.0)])
    offset = 0
    while not held or not held[0].copying.is_set():  # ~3 WAL pages per commit
        await fill(journal, [entry(offset), entry(offset + 1)])
        offset += 2
        assert offset < 2000, "no checkpoint was asked for"
    (checkpointer,) = held
    before = journal.statistics()
    for _ in range(50):  # the checkpoint is copying: commits do not wait for it
        await fill(journal, [entry(offset), entry(offset + 1)])
        offset += 2
    after = journal.statistics()
    assert after.inline_commits - before.inline_commits == 50
    checkpointer.release.set()
    await anyio.to_thread.run_sync(checkpointer.done.wait)
    # The bulk went on without the lock (the inline commits above show it);
    # then the frames committed meanwhile, with commits held off, so the
    # checkpoint completes and the WAL starts over.
    assert len(checkpointer.locked) == 2
    assert checkpointer.locked[1]
    await fill(journal, [entry(offset)])
    await journal.close()
    reader = SQLiteJournal(tmp_path / "j.db", readonly=True)
    await reader.open()
    page = await reader.read_stream("r", "k", 0, 5000)
    assert [e.offset for e in page.entries] == list(range(offset + 1))
    await reader.close()


async def test_a_failed_checkpoint_fails_the_journal_naming_the_cause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(writer: BatchWriter) -> sqlite3.Connection:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(BatchWriter, "connect_checkpointer", broken)
    journal = SQLiteJournal(tmp_path / "j.db")
    await journal.open()
    await fill(journal, [RunStarted("r", workflow="wf", input=b"\xc0", at=0.0)])
    with pytest.raises(af.JournalError, match="disk I/O error"):  # noqa: PT012 - until it fails
        for i in range(0, 4000, 2):
            await fill(journal, [entry(i), entry(i + 1)])
    with pytest.raises(af.JournalError, match="disk I/O error"):
        journal.append(entry(5000))
    with pytest.raises(af.JournalError, match="writer failed"):
        await journal.close()
    again = SQLiteJournal(tmp_path / "j.db")  # what was committed is still there
    await again.open()
    entries = (await again.read_stream("r", "k", 0, 5000)).entries
    assert [e.offset for e in entries] == list(range(len(entries)))
    assert len(entries) >= 600
    await again.close()


batch_ops = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(1, 300)),
        st.tuples(st.just("wait"), st.just(0)),
        st.tuples(st.just("yield"), st.just(0)),
    ),
    max_size=30,
)


@settings(max_examples=25, deadline=None)
@given(ops=batch_ops)
async def test_inline_and_thread_commits_keep_the_append_order(
    ops: list[tuple[str, int]],
) -> None:
    # Batches of random sizes, waited for or not: whichever thread commits
    # them, every waited ticket is committed on return and the journal holds
    # the records in append order, none lost.
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "j.db"
        journal = SQLiteJournal(path)
        await journal.open()
        ticket = journal.append(RunStarted("r", workflow="wf", input=b"\xc0", at=0.0))
        offset = 0
        for op, n in ops:
            if op == "append":
                for _ in range(n):
                    ticket = journal.append(entry(offset))
                    offset += 1
            elif op == "wait":
                await journal.wait_committed(ticket)
                assert journal.committed >= ticket
            else:
                await anyio.lowlevel.checkpoint()
        await journal.close()
        assert journal.committed == ticket
        reader = SQLiteJournal(path, readonly=True)
        await reader.open()
        page = await reader.read_stream("r", "k", 0, 10_000)
        history = await reader.load_history("r")
        await reader.close()
    assert [e.offset for e in page.entries] == list(range(offset))
    assert history is not None
    assert [r.offset for r in history.records if isinstance(r, StreamWrite)] == []
    assert len(history.records) == 1  # entries from steps are stream rows, not records


@pytest.mark.parametrize("size", [2, 500], ids=["inline", "writer-thread"])
async def test_a_failed_commit_reaches_its_waiters_either_way(tmp_path: Path, size: int) -> None:
    journal = SQLiteJournal(tmp_path / "j.db")
    await journal.open()
    await fill(journal, [RunStarted("r", workflow="wf", input=b"\xc0", at=0.0)])
    for i in range(size - 1):
        journal.append(entry(i))
    ticket = journal.append(entry(0))  # a duplicate offset: the batch cannot be written
    with pytest.raises(af.JournalError, match="writer failed"):
        await journal.wait_committed(ticket)
    with pytest.raises(af.JournalError, match="failed"):
        journal.append(entry(size))
    with pytest.raises(af.JournalError, match="writer failed"):
        await journal.close()
    again = SQLiteJournal(tmp_path / "j.db")  # nothing of the failed batch was written
    await again.open()
    assert (await again.read_stream("r", "k")).entries == []
    await again.close()


# -- committed tails: a followed stream is read from memory, as SQLite would answer --


tail_ops = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.sampled_from("ab"), st.integers(1, 40)),
        st.tuples(st.just("close"), st.sampled_from("ab"), st.just(0)),
        st.tuples(st.just("finish"), st.just(""), st.just(0)),
        st.tuples(st.just("restart"), st.just(""), st.just(0)),
        st.tuples(st.just("read"), st.sampled_from("ab"), st.integers(0, 120)),
    ),
    max_size=40,
)


@settings(max_examples=40, deadline=None)
@given(ops=tail_ops, limit=st.integers(1, 50))
# Closed before the tail began: only the file knows (the journal accepts a
# write after that; a runtime never makes one).
@example(ops=[("finish", "", 0), ("read", "b", 0), ("write", "b", 3), ("read", "b", 0)], limit=5)
@example(ops=[("close", "a", 0), ("read", "a", 0), ("write", "a", 3), ("read", "a", 0)], limit=5)
async def test_a_followed_stream_reads_the_same_from_memory_as_from_the_file(
    ops: list[tuple[str, str, int]], limit: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "j.db"
        journal = SQLiteJournal(path)
        await journal.open()
        reader = SQLiteJournal(path, readonly=True)
        lengths = {"a": 0, "b": 0}
        try:
            await fill(journal, [RunStarted("r", workflow="wf", input=b"\xc0", at=0.0)])
            await reader.open()
            for op, key, n in ops:
                if op == "write":
                    for _ in range(n):
                        journal.append(
                            StreamWrite("r", key, lengths[key], b"\x01", "main", attempt=1)
                        )
                        lengths[key] += 1
                elif op == "close":
                    journal.append(StreamEnded("r", key=key))
                elif op == "finish":
                    journal.append(RunEnded("r", status="COMPLETED", at=1.0))
                elif op == "restart":
                    journal.append(RunStarted("r", workflow="wf", input=b"\xc0", at=2.0))
                else:
                    await journal.wait_committed(journal.statistics().appends)
                    for offset in (n, max(0, lengths[key] - limit // 2)):
                        page = journal.read_stream_nowait("r", key, offset, limit)
                        if page is None:
                            page = await journal.read_stream("r", key, offset, limit)
                        assert page == await reader.read_stream("r", key, offset, limit)
        finally:
            await reader.close()
            await journal.close()


async def test_a_followed_stream_is_read_from_memory_with_no_query(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = SQLiteJournal(tmp_path / "j.db")
    await journal.open()
    await fill(journal, [RunStarted("r", workflow="wf", input=b"\xc0", at=0.0)])
    assert journal.read_stream_nowait("r", "k") is None  # the tail begins
    queries = 0
    query = SQLiteJournal._query

    async def counted(self: SQLiteJournal, fn: Any) -> Any:
        nonlocal queries
        queries += 1
        return await query(self, fn)

    monkeypatch.setattr(SQLiteJournal, "_query", counted)
    offset = 0
    for i in range(0, 3000, 100):  # more than a tail keeps
        await fill(journal, [entry(j) for j in range(i, i + 100)])
        page = journal.read_stream_nowait("r", "k", offset)
        assert page is not None
        assert [e.offset for e in page.entries] == list(range(offset, i + 100))
        offset = i + 100
    assert queries == 0
    await fill(journal, [StreamEnded("r", key="k")])
    assert journal.read_stream_nowait("r", "k", 3000) == StreamPage([], True)
    assert journal.read_stream_nowait("r", "k", 0, 10) is None  # before the tail
    old = await journal.read_stream("r", "k", 0, 10)
    assert [e.offset for e in old.entries] == list(range(10))
    assert queries == 1
    reader = SQLiteJournal(tmp_path / "j.db", readonly=True)
    await reader.open()
    assert reader.read_stream_nowait("r", "k", 0) is None  # only the writing journal has tails
    await reader.close()
    await journal.close()


async def test_a_value_over_the_size_limit_is_refused_at_append(tmp_path: Path) -> None:
    journal = SQLiteJournal(tmp_path / "j.db", max_value_bytes=1000)
    await journal.open()
    limit = sqlite3.connect(":memory:").getlimit(sqlite3.SQLITE_LIMIT_LENGTH)
    assert 0 < SQLiteJournal(tmp_path / "x.db").value_limit < limit
    assert journal.value_limit == 1000
    await fill(journal, [RunStarted("r", workflow="wf", input=b"\xc0", at=0.0)])
    big = StreamWrite("r", key="k", offset=0, value=b"\xc4" * 1001, step_id="s", attempt=1)
    with pytest.raises(af.EncodeError, match=r"stream 'k' of run 'r' is 1,001 bytes.* 1,000 bytes"):
        journal.append(big)
    with pytest.raises(af.EncodeError, match="output of the step at position 0"):
        journal.append(StepCompleted("r", position=0, attempt=1, output=b"\xc4" * 2000, at=1.0))
    await fill(journal, [entry(0)])  # nothing was queued; the journal goes on
    assert journal.statistics().appends == 2
    await journal.close()
    again = SQLiteJournal(tmp_path / "j.db")
    await again.open()
    assert [e.offset for e in (await again.read_stream("r", "k")).entries] == [0]
    await again.close()


@af.step
async def write_big(ctx: af.StepContext, size: int) -> int:
    await ctx.write_stream("out", b"x" * size)
    return size


@af.workflow
async def big_writer(ctx: af.WorkflowContext, size: int) -> int:
    return await ctx.step(write_big, size)


async def test_a_step_writing_a_value_over_the_limit_fails_and_other_runs_finish(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j.db"
    async with af.Runtime(SQLiteJournal(path, max_value_bytes=10_000)) as rt:
        big = await rt.start(big_writer, 20_000, run_id="big")
        small = await rt.start(big_writer, 10, run_id="small")
        with pytest.raises(af.RunFailed, match="20,00"):
            await big.result()
        assert await small.result() == 10
    async with af.Runtime(path) as rt:  # reopens, recovering nothing
        assert (await rt.get_run("big")).status is af.RunStatus.FAILED
        assert (await rt.get_run("small")).status is af.RunStatus.COMPLETED


def _tail_bytes(journal: SQLiteJournal) -> int:
    tails = journal._tails
    held = sum(len(w.value) for t in tails.streams.values() for w in t.entries)
    assert tails.nbytes == held == sum(t.nbytes for t in tails.streams.values())
    return held


def _write(run_id: str, offset: int, size: int) -> StreamWrite:
    value = msgspec.msgpack.encode(b"x" * size)
    return StreamWrite(run_id, "k", offset, value, step_id="s", attempt=1)


async def test_the_tails_of_finished_runs_are_released_once_read(tmp_path: Path) -> None:
    journal = SQLiteJournal(tmp_path / "j.db")
    await journal.open()
    runs = [f"r{i}" for i in range(4)]
    await fill(journal, [RunStarted(r, workflow="wf", input=b"\xc0", at=0.0) for r in runs])
    for run_id in runs:
        assert journal.read_stream_nowait(run_id, "k") is None  # a follower begins
    for offset in range(20):
        await fill(journal, [_write(r, offset, 64 << 10) for r in runs])
    assert _tail_bytes(journal) > 4 * 20 * (64 << 10)
    await fill(journal, [RunEnded(r, status="COMPLETED", at=1.0, output=b"\xc0") for r in runs])
    for run_id in runs:  # each follower reads to the end, then leaves
        page = journal.read_stream_nowait(run_id, "k", 0, 1000)
        assert page is not None
        assert (len(page.entries), page.closed) == (20, True)
    assert _tail_bytes(journal) == 0
    assert not journal._tails.streams
    await journal.close()


async def test_the_tails_are_bounded_in_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from actorflow._journals._sqlite import _tails

    monkeypatch.setattr(_tails, "_TAIL_BYTES", 100_000)
    monkeypatch.setattr(_tails, "_TAILS_BYTES", 250_000)
    journal = SQLiteJournal(tmp_path / "j.db")
    await journal.open()
    runs = [f"r{i}" for i in range(4)]
    await fill(journal, [RunStarted(r, workflow="wf", input=b"\xc0", at=0.0) for r in runs])
    for run_id in runs:
        assert journal.read_stream_nowait(run_id, "k") is None  # followers, who then leave
    for offset in range(50):
        await fill(journal, [_write(r, offset, 10_000) for r in runs])
        assert _tail_bytes(journal) <= 250_000
        assert all(t.nbytes <= 100_000 for t in journal._tails.streams.values())
    await fill(journal, [_write("r0", 50, 300_000)])  # bigger than a tail keeps
    assert _tail_bytes(journal) <= 250_000
    for run_id in runs:  # whatever memory kept, a reader gets every entry
        offset = 0
        while True:
            page = journal.read_stream_nowait(run_id, "k", offset)
            if page is None:
                page = await journal.read_stream(run_id, "k", offset)
            offset += len(page.entries)
            if not page.entries:
                break
        assert offset == (51 if run_id == "r0" else 50)
    await journal.close()


async def test_without_posix_locks_a_journal_opens_only_readonly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "j.db"
    journal = SQLiteJournal(path)
    await journal.open()
    await fill(journal, [RunStarted("r", workflow="wf", input=b"\xc0", at=0.0)])
    await journal.close()
    monkeypatch.setitem(sys.modules, "fcntl", None)  # as on Windows: import fails
    with pytest.raises(af.JournalError, match=r"POSIX file locks.*readonly=True"):
        await SQLiteJournal(path).open()
    reader = SQLiteJournal(path, readonly=True)
    await reader.open()
    assert await reader.get_run("r") is not None
    await reader.close()


@af.step
async def big_output(ctx: af.StepContext, size: int) -> bytes:
    return b"x" * size


@af.workflow
async def big_step_output(ctx: af.WorkflowContext, size: int) -> int:
    return len(await ctx.step(big_output, size))


@af.workflow
async def big_run_output(ctx: af.WorkflowContext, size: int) -> bytes:
    return b"y" * size


@pytest.mark.parametrize("wf", [big_step_output, big_run_output])
async def test_an_output_over_the_limit_fails_the_run_not_the_runtime(
    tmp_path: Path, wf: Any
) -> None:
    async with af.Runtime(SQLiteJournal(tmp_path / "j.db", max_value_bytes=1000)) as rt:
        with anyio.fail_after(10), pytest.raises(af.RunFailed, match="1,000 bytes"):
            await rt.run(wf, 5000)
        assert await rt.run(big_writer, 10) == 10  # the runtime goes on
