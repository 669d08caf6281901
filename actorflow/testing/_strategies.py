"""Hypothesis strategies: crash plans, moments, values, seeds."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from ._crash import CrashPlan

__all__ = ("crash_plans", "encodable_values", "moments", "seeds")


def crash_plans(*, max_crashes: int = 2, max_append: int = 64) -> st.SearchStrategy[CrashPlan]:
    """Plans of 0 to ``max_crashes`` crashes, each at an append from 1 to ``max_append``.

    They shrink towards fewer crashes at earlier appends. A point past the
    appends a life makes means that life does not crash.
    """
    points = st.lists(st.integers(1, max_append), max_size=max_crashes)
    return points.map(lambda p: CrashPlan(*p))


def moments(*, max_appends: int = 64) -> st.SearchStrategy[int]:
    """A moment of a run, as a count of journal appends (``record_stream(after_appends=)``)."""
    return st.integers(0, max_appends)


def seeds() -> st.SearchStrategy[int]:
    """Seeds for the schedule of ready tasks; they shrink towards 0 (the unperturbed order)."""
    return st.integers(0, 2**32 - 1)


def encodable_values(*, max_leaves: int = 10) -> st.SearchStrategy[Any]:
    """Values that msgspec encodes and that decode equal: what workflows pass and stream.

    None, bools, 64-bit ints, finite floats, text, bytes, and lists and
    string-keyed dicts of them.
    """
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**64 - 1),
        st.floats(allow_nan=False),
        st.text(max_size=20),
        st.binary(max_size=20),
    )
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(st.text(max_size=8), children, max_size=4),
        ),
        max_leaves=max_leaves,
    )
