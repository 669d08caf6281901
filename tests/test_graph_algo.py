"""The superstep algebra (actorflow._graph._algo): pure, so tested without a runtime."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import actorflow as af
from actorflow._graph._algo import check_output, initial_state, merge, next_active
from actorflow._graph._types import NodeOutput

# A non-commutative reducer: the merge order shows in the result.
log = af.Key("log", default="", reducer=lambda current, update: current + update)
items = af.ListKey("items")
status = af.Key("status", default="")
KEYS = {k.name: k for k in (log, items, status)}

node_names = st.sampled_from(["a", "b", "c", "d", "e"])


@st.composite
def superstep_outputs(draw: st.DrawFn) -> list[tuple[str, NodeOutput]]:
    """Outputs of distinct nodes, at most one of them replacing ``status``."""
    nodes = draw(st.lists(node_names, unique=True, max_size=5))
    replacer = draw(st.sampled_from([None, *nodes]))
    outputs = []
    for node in nodes:
        updates: dict[str, Any] = {}
        if draw(st.booleans()):
            updates["log"] = node
        if draw(st.booleans()):
            updates["items"] = [f"{node}{i}" for i in range(draw(st.integers(0, 2)))]
        if node == replacer:
            updates["status"] = node
        targets = draw(st.lists(st.sampled_from(["a", "b", "c", af.END]), unique=True))
        outputs.append((node, NodeOutput(updates=updates, targets=targets)))
    return outputs


@given(superstep_outputs(), st.randoms())
def test_merge_does_not_depend_on_completion_order(
    outputs: list[tuple[str, NodeOutput]], rnd: Any
) -> None:
    state = initial_state("g", KEYS, None)
    shuffled = list(outputs)
    rnd.shuffle(shuffled)
    assert merge("g", KEYS, state, shuffled, 0) == merge("g", KEYS, state, outputs, 0)


@given(superstep_outputs())
def test_merge_applies_updates_in_node_name_order(outputs: list[tuple[str, NodeOutput]]) -> None:
    state = initial_state("g", KEYS, {"log": ">", "items": ["x"]})
    new = merge("g", KEYS, state, outputs, 3)
    ordered = sorted(outputs)
    assert new["log"] == ">" + "".join(o.updates.get("log", "") for _, o in ordered)
    assert new["items"] == ["x"] + [i for _, o in ordered for i in o.updates.get("items", [])]
    writers = [n for n, o in ordered if "status" in o.updates]
    assert new["status"] == (writers[0] if writers else "")
    # The state the superstep started from is left as it was.
    assert state == {"log": ">", "items": ["x"], "status": ""}


@given(superstep_outputs(), st.integers(2, 3), st.randoms())
def test_two_replace_writes_to_one_key_conflict_in_any_order(
    outputs: list[tuple[str, NodeOutput]], writers: int, rnd: Any
) -> None:
    # Nodes "x", "y", "z" (not among the drawn names) replace status too.
    extra = [(n, NodeOutput(updates={"status": n})) for n in "xyz"[:writers]]
    outputs = [*outputs, *extra]
    rnd.shuffle(outputs)
    first, second = sorted(n for n, o in outputs if "status" in o.updates)[:2]
    with pytest.raises(af.GraphError) as info:
        merge("g", KEYS, initial_state("g", KEYS, None), outputs, 7)
    assert str(info.value).startswith(
        f"nodes {first!r} and {second!r} both set key 'status' in superstep 7 of graph 'g'"
    )


def test_reducer_keys_take_several_writes_in_one_superstep() -> None:
    outputs = [
        ("b", NodeOutput(updates={"log": "b", "items": ["b"]})),
        ("a", NodeOutput(updates={"log": "a", "items": ["a"]})),
    ]
    new = merge("g", KEYS, initial_state("g", KEYS, None), outputs, 0)
    assert (new["log"], new["items"]) == ("ab", ["a", "b"])


@given(superstep_outputs(), st.randoms())
def test_next_active_is_the_sorted_union_of_targets_and_edges_without_end(
    outputs: list[tuple[str, NodeOutput]], rnd: Any
) -> None:
    edges = {"a": ("d",), "b": (af.END,), "e": ("a", "e")}
    expected: set[str] = set()
    for node, output in outputs:
        expected.update(output.targets)
        expected.update(edges.get(node, ()))
    expected.discard(af.END)
    shuffled = list(outputs)
    rnd.shuffle(shuffled)
    assert next_active(edges, shuffled) == sorted(expected)


def test_end_alone_ends_the_run() -> None:
    outputs = [("a", NodeOutput(targets=[af.END])), ("b", NodeOutput())]
    assert next_active({"b": (af.END,)}, outputs) == []


def test_initial_state_merges_the_input_by_reducer_and_copies_defaults() -> None:
    shared = af.Key("shared", default={"n": 0})
    keys = {**KEYS, "shared": shared}
    state = initial_state("g", keys, {"items": [1], "log": "x"})
    assert state == {"log": "x", "items": [1], "status": "", "shared": {"n": 0}}
    assert state["shared"] is not shared.default
    with pytest.raises(af.GraphError, match=r"the input of graph 'g' sets unknown key 'nope'"):
        initial_state("g", keys, {"nope": 1})
    with pytest.raises(af.GraphError, match=r"is a dict of key name -> value or None"):
        initial_state("g", keys, [1])


def test_check_output_names_the_node_and_what_is_wrong() -> None:
    check_output("g", "n", NodeOutput(updates={"items": [1]}, appended=["items"]), KEYS, {"a"})
    check_output("g", "n", NodeOutput(targets=[af.END, "a"]), KEYS, {"a"})
    with pytest.raises(af.GraphError, match=r"node 'n' updated unknown key 'x'"):
        check_output("g", "n", NodeOutput(updates={"x": 1}), KEYS, ())
    with pytest.raises(af.GraphError, match=r"appended to key 'status', which is not"):
        check_output("g", "n", NodeOutput(updates={"status": [1]}, appended=["status"]), KEYS, ())
    with pytest.raises(af.GraphError, match=r"node 'n' routed to 'b', which is not among"):
        check_output("g", "n", NodeOutput(targets=["b"]), KEYS, {"a"})
