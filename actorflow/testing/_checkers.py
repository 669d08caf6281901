"""Checkers that understand attempts: exactly-once, order, committed prefix, live gaps.

Each raises :class:`CheckFailed` (an ``AssertionError``) with one sentence
that says what was wrong and where, so a failing property test reads well.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .._exceptions import ActorflowError
from ..abc import Message, StreamEntry
from ._recordings import LiveRecording

__all__ = (
    "CheckFailed",
    "check_attempts",
    "check_exactly_once",
    "check_live_gaps",
    "check_live_recording",
    "check_offsets",
    "check_order",
    "check_prefix",
    "final_attempt_values",
)


class CheckFailed(ActorflowError, AssertionError):
    """A checker of :mod:`actorflow.testing` found a violation (it says which and where)."""


def check_offsets(entries: Sequence[StreamEntry], *, from_offset: int | None = None) -> None:
    """Offsets are contiguous, each read once, in order (from ``from_offset`` if given).

    Raises:
        CheckFailed: an offset is missing, repeated or out of order.
    """
    expected = entries[0].offset if from_offset is None and entries else from_offset or 0
    for entry in entries:
        if entry.offset != expected:
            what = "repeated" if entry.offset < expected else f"missing offset {expected}"
            raise CheckFailed(
                f"stream entries are not read exactly once in order: got offset {entry.offset} "
                f"where {expected} was due ({what}); entry {entry!r}"
            )
        expected += 1


def check_attempts(entries: Sequence[StreamEntry]) -> None:
    """A retried attempt's entries come after the earlier attempts' (per step).

    Raises:
        CheckFailed: an entry of an earlier attempt follows one of a later attempt.
    """
    latest: dict[str, int] = {}
    for entry in entries:
        if entry.attempt < latest.get(entry.step_id, 0):
            raise CheckFailed(
                f"entry {entry!r} of attempt {entry.attempt} follows an entry of attempt "
                f"{latest[entry.step_id]} of step {entry.step_id!r}: attempts must not interleave"
            )
        latest[entry.step_id] = entry.attempt


def final_attempt_values(entries: Iterable[StreamEntry]) -> list[object]:
    """The values written by each step's last attempt (and the body), in offset order.

    What a reader that discards superseded attempts (``entry.attempt`` lower
    than a later entry's of the same step) keeps.
    """
    entries = list(entries)
    last: dict[str, int] = {}
    for entry in entries:
        last[entry.step_id] = max(last.get(entry.step_id, 0), entry.attempt)
    return [e.value for e in entries if e.attempt == last[e.step_id]]


def check_exactly_once(entries: Sequence[StreamEntry], expected: Iterable[object]) -> None:
    """Every value the step meant to write is read exactly once, in order, attempts understood.

    Checks :func:`check_offsets` and :func:`check_attempts`, then that the
    values of each step's last attempt are ``expected``, and that each
    superseded attempt (cut short by a crash or a failure) wrote a prefix of
    what its step's last attempt wrote, never anything else.

    Raises:
        CheckFailed: with the first violation.
    """
    check_offsets(entries)
    check_attempts(entries)
    expected = list(expected)
    got = final_attempt_values(entries)
    if got != expected:
        raise CheckFailed(f"the last attempts wrote {got!r}, not the expected {expected!r}")
    by_attempt: dict[tuple[str, int], list[object]] = {}
    for entry in entries:
        by_attempt.setdefault((entry.step_id, entry.attempt), []).append(entry.value)
    finals = {step: max(a for s, a in by_attempt if s == step) for step, _ in by_attempt}
    for (step, attempt), values in by_attempt.items():
        final = by_attempt[(step, finals[step])]
        if values != final[: len(values)]:
            raise CheckFailed(
                f"attempt {attempt} of step {step!r} wrote {values!r}, which is not a prefix "
                f"of what its last attempt wrote ({final!r})"
            )


def check_order(seen: Iterable[object], expected: Iterable[object]) -> None:
    """``seen`` is ``expected`` minus some elements, in the same order (a lossy reader's view).

    Raises:
        CheckFailed: an element is out of order, repeated, or never expected.
    """
    remaining = iter(list(expected))
    for index, value in enumerate(seen):
        for candidate in remaining:
            if candidate == value:
                break
        else:
            raise CheckFailed(
                f"element #{index} ({value!r}) is out of order, repeated or unexpected"
            )


def check_prefix(seen: Sequence[object], committed: Sequence[object]) -> None:
    """``seen`` is a prefix of ``committed`` (a reader only ever sees a committed prefix).

    Raises:
        CheckFailed: ``seen`` differs from ``committed[:len(seen)]``.
    """
    if list(seen) != list(committed[: len(seen)]):
        for index, (a, b) in enumerate(zip(seen, committed, strict=False)):
            if a != b:
                raise CheckFailed(f"element #{index} was seen as {a!r} but committed as {b!r}")
        raise CheckFailed(f"{len(seen)} elements were seen but only {len(committed)} are committed")


def check_live_gaps(
    messages: Sequence[Message], *, dropped: int | None = None, from_start: bool = True
) -> None:
    """Live messages are in publish order per subject and ``dropped_before`` accounts for every gap.

    Args:
        messages: what one subscriber received (of one life: ``seq`` restarts with a broker).
        dropped: the subscription's own drop count; the reported drops must not exceed it.
        from_start: the subscriber subscribed before the first publish, so
            the first message's ``seq - 1`` must be reported as dropped too.

    Raises:
        CheckFailed: a gap that ``dropped_before`` does not explain, or a reordering.
    """
    last: dict[str, int] = {}
    reported = missing = 0
    one_subject = len({m.subject for m in messages}) <= 1
    for message in messages:
        previous = last.get(message.subject, 0 if from_start else None)
        if previous is not None:
            gap = message.seq - previous - 1
            if gap < 0:
                raise CheckFailed(f"message {message!r} arrived after seq {previous}: out of order")
            # dropped_before counts the subscription's drops, whatever their subject:
            # per message it equals the gap only when one subject is subscribed.
            if one_subject and gap != message.dropped_before:
                raise CheckFailed(
                    f"{gap} messages are missing before {message!r} but it reports "
                    f"dropped_before={message.dropped_before}"
                )
            missing += gap
        reported += message.dropped_before
        last[message.subject] = message.seq
    if from_start and missing != reported:
        raise CheckFailed(
            f"{missing} messages are missing but the messages report {reported} drops"
        )
    if dropped is not None and reported > dropped:
        raise CheckFailed(
            f"messages report {reported} drops but the subscription counted {dropped}"
        )


def check_live_recording(recording: LiveRecording) -> None:
    """:func:`check_live_gaps` for each life of a harness's live recording."""
    for life, messages in recording.by_life().items():
        check_live_gaps(messages, dropped=recording.dropped.get(life))
