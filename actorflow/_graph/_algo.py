"""The superstep algebra: pure functions from node outputs to the next state and active set.

A superstep's nodes finish in whatever order the scheduler gives; what they
leave behind must not depend on it. So, as LangGraph's ``apply_writes`` sorts
its tasks before applying their writes, :func:`merge` applies the nodes'
updates in node-name order, each key by its reducer, and :func:`next_active`
returns the targets sorted. A recovered run replays the same outputs through
the same functions and gets the same state.

No I/O, no event loop, no journal: everything here is a function of its
arguments (reducers are the user's, and are called once per update).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from .._exceptions import GraphError
from ._types import END, Key, NodeOutput

__all__ = ("check_output", "initial_state", "merge", "next_active")


def initial_state(graph: str, keys: Mapping[str, Key], input: Any) -> dict[str, Any]:
    """The state of a new run of graph ``graph``: each key's default, merged with ``input``.

    Raises:
        GraphError: ``input`` is not a mapping (or None), or sets an unknown key.
    """
    state = {name: key.initial() for name, key in keys.items()}
    if input is None:
        return state
    if not isinstance(input, Mapping):
        raise GraphError(
            f"the input of graph {graph!r} is a dict of key name -> value or None, not {input!r}"
        )
    for name, value in input.items():
        if name not in keys:
            raise GraphError(f"the input of graph {graph!r} sets unknown key {name!r}")
        state[name] = keys[name].reduce(state[name], value)
    return state


def check_output(
    graph: str, node: str, output: NodeOutput, keys: Mapping[str, Key], allowed: Collection[str]
) -> None:
    """Check what node ``node`` returned against the keys and the targets it may choose.

    Raises:
        GraphError: an update of an unknown key, an append to a key that is
            not an :class:`~actorflow.ListKey`, or a target not in ``allowed``
            (``END`` is always allowed).
    """
    for name in output.updates:
        if name not in keys:
            raise GraphError(
                f"node {node!r} updated unknown key {name!r}; declare it in "
                f"Graph({graph!r}, keys=[...])"
            )
        if name in output.appended and not keys[name].appends:
            raise GraphError(f"node {node!r} appended to key {name!r}, which is not an af.ListKey")
    for target in output.targets:
        if target != END and target not in allowed:
            raise GraphError(
                f"node {node!r} routed to {target!r}, which is not among its targets "
                f"{sorted(allowed)!r}; list it in @g.node(to=[...])"
            )


def merge(
    graph: str,
    keys: Mapping[str, Key],
    state: Mapping[str, Any],
    outputs: Iterable[tuple[str, NodeOutput]],
    superstep: int,
) -> dict[str, Any]:
    """Merge the nodes' updates into a new state, node by node in name order.

    ``state`` is not changed. Each update goes through its key's reducer; a
    key without one (a replace) may be written by one node per superstep.

    Args:
        graph: the graph's name, for messages.
        keys: the state keys, by name.
        state: the state at the superstep's start.
        outputs: ``(node, output)`` pairs, one per node, in any order.
        superstep: the superstep's number, for messages.

    Raises:
        GraphError: two nodes replaced one key in this superstep.
    """
    new = dict(state)
    writers: dict[str, str] = {}
    for node, output in sorted(outputs, key=_node_name):
        for name, value in output.updates.items():
            key = keys[name]
            if key.replaces:
                if name in writers:
                    raise GraphError(
                        f"nodes {writers[name]!r} and {node!r} both set key {name!r} in "
                        f"superstep {superstep} of graph {graph!r}; give it a reducer "
                        "(af.Key(..., reducer=fn) or af.ListKey) or let one node write it"
                    )
                writers[name] = node
            new[name] = key.reduce(new[name], value)
    return new


def next_active(
    edges: Mapping[str, Sequence[str]], outputs: Iterable[tuple[str, NodeOutput]]
) -> list[str]:
    """The nodes of the next superstep, sorted: every target chosen and every static edge.

    ``END`` is dropped: it ends a branch, and the run ends when nothing is left.
    """
    targets: set[str] = set()
    for node, output in outputs:
        targets.update(output.targets)
        targets.update(edges.get(node, ()))
    targets.discard(END)
    return sorted(targets)


def _node_name(pair: tuple[str, NodeOutput]) -> str:
    return pair[0]
