"""Fault injection without changing user code: failing step attempts, slow or failing commits.

Slow subscribers are a harness reader option (``Harness.record_live(delay=)``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import attrs

from .._exceptions import ActorflowError, JournalError
from .._registry import Step
from ..records import Record
from ._wrapper import JournalWrapper

__all__ = ("FaultyJournal", "InjectedFault", "fail_attempts")


class InjectedFault(ActorflowError, RuntimeError):
    """The error a step attempt raises when :func:`fail_attempts` makes it fail."""


@contextmanager
def fail_attempts(
    step: Step[Any, Any],
    attempts: Iterable[int],
    error: Callable[[int], BaseException] | None = None,
) -> Iterator[None]:
    """Make the given attempts of ``step`` raise before its code runs, inside the block.

    The step's function is wrapped for the duration of the block and
    restored after it; the workflow code does not change. The runtime sees an
    ordinary failed attempt: it records it, backs off and retries as the
    step's options say.

    Args:
        step: the ``@af.step`` to fail.
        attempts: the attempt numbers (from 1) that fail.
        error: makes the exception from the attempt number (default:
            :class:`InjectedFault`).
    """
    failing = frozenset(attempts)
    original = step.fn

    def fault(attempt: int) -> BaseException:
        if error is not None:
            return error(attempt)
        return InjectedFault(f"attempt {attempt} of step {step.name!r} failed (injected)")

    if step.is_async:

        @functools.wraps(original)
        async def wrapped(ctx: Any, input: Any) -> Any:
            if ctx.attempt in failing:
                raise fault(ctx.attempt)
            return await original(ctx, input)

    else:

        @functools.wraps(original)
        def wrapped(ctx: Any, input: Any) -> Any:
            if ctx.attempt in failing:
                raise fault(ctx.attempt)
            return original(ctx, input)

    # Step is frozen: the registry's object is the one workflow code holds, so
    # it is patched in place (and only for the block).
    object.__setattr__(step, "fn", wrapped)
    try:
        yield
    finally:
        object.__setattr__(step, "fn", original)


@attrs.define(eq=False)
class FaultyJournal(JournalWrapper):
    """A :class:`~actorflow.abc.Journal` over ``inner`` whose commits are slow, or fail.

    Args:
        inner: the journal.
        commit_delay: seconds (of loop time: virtual in tests) each wait for a
            commit takes before it returns.
        fail_at: from this append number (from 1) on, appends and waits for
            their commits raise :class:`~actorflow.JournalError`, as when a
            journal's writer dies (a full disk); ``None`` never fails.
    """

    commit_delay: float = 0.0
    fail_at: int | None = None
    #: Appends so far.
    appends: int = attrs.field(default=0, init=False)
    _failed_from: int | None = attrs.field(default=None, init=False)
    _last_ticket: int = attrs.field(default=0, init=False)

    def _error(self) -> JournalError:
        return JournalError(
            f"the journal writer failed at append #{self.fail_at} (injected by "
            f"{type(self).__name__}); records after the last commit were not written"
        )

    def append(self, record: Record) -> int:
        """Pass ``record`` on, unless the injected failure has come.

        Raises:
            JournalError: append number ``fail_at`` or a later one.
        """
        self.appends += 1
        if self.fail_at is not None and self.appends >= self.fail_at:
            if self._failed_from is None:
                self._failed_from = self._last_ticket + 1
            raise self._error()
        self._last_ticket = self.inner.append(record)
        return self._last_ticket

    async def wait_committed(self, ticket: int) -> None:
        """Wait ``commit_delay``, then as ``inner``; a failed ticket raises JournalError."""
        if self.commit_delay:
            await anyio.sleep(self.commit_delay)
        if self._failed_from is not None and ticket >= self._failed_from:
            raise self._error()
        await self.inner.wait_committed(ticket)

    async def wait_for_commit(self, after: int) -> int:
        """As ``inner``."""
        return await self.inner.wait_for_commit(after)
