from __future__ import annotations

import actorflow as af
from actorflow.records import RunEnded, RunStarted, StreamEnded, StreamWrite


async def test_memory_journal_commits_on_append() -> None:
    j = af.MemoryJournal()
    await j.open()
    t = j.append(RunStarted("r1", workflow="wf", input=b"\xc0", at=1.0))
    await j.wait_committed(t)
    assert j.committed == t == 1
    j.append(StreamWrite("r1", key="k", offset=0, value=b"\x01", step_id="main", attempt=1))
    page = await j.read_stream("r1", "k")
    assert [e.value for e in page.entries] == [1]
    assert not page.closed
    j.append(StreamEnded("r1", key="k"))
    j.append(RunEnded("r1", status="COMPLETED", at=2.0, output=b"\xc0"))
    page = await j.read_stream("r1", "k")
    assert page.closed
    info = await j.get_run("r1")
    assert info is not None
    assert info.status is af.RunStatus.COMPLETED
    await j.close()
