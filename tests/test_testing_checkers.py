"""actorflow.testing checkers: each accepts what the runtime promises and names a violation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actorflow.abc import Message, StreamEntry
from actorflow.testing import (
    CheckFailed,
    check_attempts,
    check_exactly_once,
    check_live_gaps,
    check_offsets,
    check_order,
    check_prefix,
    encodable_values,
    final_attempt_values,
)


def entries(*spec: tuple[object, int]) -> list[StreamEntry]:
    return [StreamEntry(i, value, "s", attempt) for i, (value, attempt) in enumerate(spec)]


def test_a_retried_attempt_after_a_prefix_is_exactly_once() -> None:
    written = entries(("a", 1), ("a", 2), ("b", 2), ("c", 2))
    check_exactly_once(written, ["a", "b", "c"])
    assert final_attempt_values(written) == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("written", "match"),
    [
        (entries(("a", 1), ("b", 1)), r"not the expected"),
        (entries(("x", 1), ("a", 2), ("b", 2), ("c", 2)), r"not a prefix"),
        (entries(("a", 2), ("a", 1), ("b", 2), ("c", 2)), r"attempts must not interleave"),
    ],
)
def test_exactly_once_names_the_violation(written: list[StreamEntry], match: str) -> None:
    with pytest.raises(CheckFailed, match=match):
        check_exactly_once(written, ["a", "b", "c"])


def test_offsets_and_attempts() -> None:
    check_offsets([])
    check_attempts(entries(("a", 1), ("b", 3)))
    with pytest.raises(CheckFailed, match="missing offset 1"):
        check_offsets([StreamEntry(0, "a", "s", 1), StreamEntry(2, "c", "s", 1)])
    with pytest.raises(CheckFailed, match="repeated"):
        check_offsets([StreamEntry(0, "a", "s", 1), StreamEntry(0, "a", "s", 1)])
    with pytest.raises(CheckFailed, match="due"):
        check_offsets([StreamEntry(3, "a", "s", 1)], from_offset=2)


def test_order_and_prefix() -> None:
    check_order([1, 3], [1, 2, 3])
    with pytest.raises(CheckFailed, match="#1"):
        check_order([3, 1], [1, 2, 3])
    check_prefix([1, 2], [1, 2, 3])
    with pytest.raises(CheckFailed, match="#1"):
        check_prefix([1, 4], [1, 2, 3])
    with pytest.raises(CheckFailed, match="only 1"):
        check_prefix([1, 2], [1])


def message(seq: int, dropped: int = 0, subject: str = "stream.r.s") -> Message:
    return Message(subject, "r", "s", seq, seq, dropped)


def test_live_gaps_are_accounted_for_by_dropped_before() -> None:
    check_live_gaps([message(1), message(4, 2)], dropped=2)
    check_live_gaps([message(3, 2), message(4)], dropped=2)
    with pytest.raises(CheckFailed, match="2 messages are missing"):
        check_live_gaps([message(1), message(4, 1)])
    with pytest.raises(CheckFailed, match="out of order"):
        check_live_gaps([message(2, 1), message(1)])
    with pytest.raises(CheckFailed, match="counted 1"):
        check_live_gaps([message(1), message(4, 2)], dropped=1)
    check_live_gaps([message(5), message(6)], from_start=False)
    two = [message(1), message(1, subject="stream.r.t"), message(3, 1)]
    check_live_gaps(two)


@given(encodable_values())
def test_encodable_values_round_trip(value: object) -> None:
    import msgspec

    assert msgspec.msgpack.decode(msgspec.msgpack.encode(value)) == value


@given(st.lists(st.integers(), max_size=8))
def test_a_lossy_subsequence_is_in_order(xs: list[int]) -> None:
    check_order(xs[::2], xs)
