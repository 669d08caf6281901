"""A journal over another one, passing everything on: the base of the fault-injecting journals."""

from __future__ import annotations

import attrs

from ..abc import Journal, RunHistory, RunInfo, RunStatus, StreamInfo, StreamPage
from ..records import Record

__all__ = ("JournalWrapper",)


@attrs.define(eq=False)
class JournalWrapper:
    """An :class:`~actorflow.abc.Journal` that passes every call on to ``inner``.

    A subclass overrides what it changes (appends, commit waits); a wrapped
    journal is never shared with other runtimes (``requests`` and ``reader()``
    are None).

    Args:
        inner: the journal underneath.
    """

    inner: Journal

    @property
    def requests(self) -> None:
        """None: a wrapped journal is not shared with other runtimes."""
        return None

    def reader(self) -> None:
        """None: a wrapped journal is not shared with other runtimes."""
        return None

    @property
    def readonly(self) -> bool:
        """As ``inner``."""
        return self.inner.readonly

    @property
    def committed(self) -> int:
        """As ``inner``."""
        return self.inner.committed

    async def open(self) -> None:
        """Open ``inner``."""
        await self.inner.open()

    async def close(self) -> None:
        """Close ``inner``."""
        await self.inner.close()

    def append(self, record: Record) -> int:
        """As ``inner``."""
        return self.inner.append(record)

    async def wait_committed(self, ticket: int) -> None:
        """As ``inner``."""
        await self.inner.wait_committed(ticket)

    async def wait_for_commit(self, after: int) -> int:
        """As ``inner``."""
        return await self.inner.wait_for_commit(after)

    async def get_run(self, run_id: str) -> RunInfo | None:
        """As ``inner``."""
        return await self.inner.get_run(run_id)

    async def list_runs(self, status: RunStatus | None = None) -> list[RunInfo]:
        """As ``inner``."""
        return await self.inner.list_runs(status)

    async def page_runs(
        self,
        status: RunStatus | None = None,
        *,
        workflow: str | None = None,
        before: str | None = None,
        limit: int = 50,
    ) -> list[RunInfo]:
        """As ``inner``."""
        return await self.inner.page_runs(status, workflow=workflow, before=before, limit=limit)

    async def load_history(self, run_id: str) -> RunHistory | None:
        """As ``inner``."""
        return await self.inner.load_history(run_id)

    async def read_stream(
        self, run_id: str, key: str, from_offset: int = 0, limit: int = 1000
    ) -> StreamPage:
        """As ``inner``."""
        return await self.inner.read_stream(run_id, key, from_offset, limit)

    def read_stream_nowait(
        self, run_id: str, key: str, from_offset: int, limit: int
    ) -> StreamPage | None:
        """As ``inner``."""
        return self.inner.read_stream_nowait(run_id, key, from_offset, limit)

    async def list_streams(self, run_id: str) -> list[StreamInfo]:
        """As ``inner``."""
        return await self.inner.list_streams(run_id)
