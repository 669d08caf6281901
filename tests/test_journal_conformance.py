"""Every journal backend passes actorflow.testing.check_journal, on asyncio and trio.

The conformance machine drives the journal under test and a MemoryJournal
reference with one random history, reopening the journal under test now and
then, and checks that they answer every read alike and match the model.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import actorflow as af
from actorflow.testing import check_journal

BACKENDS = ["asyncio", "trio"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_memory_journal_conforms(backend: str) -> None:
    check_journal(lambda directory: af.MemoryJournal(), backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sqlite_journal_conforms(backend: str) -> None:
    check_journal(lambda directory: af.SQLiteJournal(directory / "journal.db"), backend=backend)


def test_a_journal_that_forgets_a_stream_close_fails_the_check(tmp_path: Path) -> None:
    """The suite has teeth: a journal that drops closes is caught."""

    class ForgetsCloses(af.MemoryJournal):
        def append(self, record: af.records.Record) -> int:
            if isinstance(record, af.records.StreamEnded):
                record = af.records.RunResumed(record.run_id, at=0.0)
            return super().append(record)

    # Hypothesis raises the failure it shrank to, or a group when it found several.
    with pytest.raises((AssertionError, ExceptionGroup)):
        check_journal(lambda directory: ForgetsCloses(), backend="asyncio")
