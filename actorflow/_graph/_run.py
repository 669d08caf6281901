"""Executing a graph run: supersteps of node steps in the workflow body.

The workflow body keeps the state (a dict, key name → value). Each
superstep, every active node runs as a step, concurrently, with the state as
it was at the start of the superstep; at the barrier the body merges their
outputs (:mod:`._algo`) and appends one entry (the nodes' results and the
merged state: the superstep's checkpoint) to the results stream.

Every node call is a step, so a node that finished is never run again:
recovery replays the body, which gets each finished node's recorded output
back and re-merges it.

:func:`actorflow._context.run_port` is how supersteps reach the run behind a
:class:`~actorflow._context.WorkflowContext`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from .._context import WorkflowContext, run_concurrently, run_port
from .._exceptions import GraphError, StepFailed
from ._algo import initial_state, merge, next_active
from ._types import RESULTS_STREAM, Key, NodeInput, NodeOutput

if TYPE_CHECKING:
    from .._registry import Step

__all__ = ("GraphPlan", "run_graph")


def _body_write(ctx: WorkflowContext, key: str, value: object) -> None:
    """``ctx.write_stream`` without its checkpoint.

    The journal commits once per event-loop tick: a checkpoint here would let
    the records queued so far be committed on their own, and the superstep
    would pay a second commit. Without one, the superstep's records share the
    commit that ``ctx.flush()`` waits for.
    """
    run_port(ctx).write_stream(key, value, "main", 1)


class GraphPlan(Protocol):
    """What running a graph needs to know of it (a :class:`CompiledGraph` is one)."""

    @property
    def name(self) -> str: ...
    @property
    def keys(self) -> Mapping[str, Key]: ...
    @property
    def start(self) -> str: ...
    @property
    def edges(self) -> Mapping[str, tuple[str, ...]]: ...
    @property
    def max_supersteps(self) -> int: ...


async def _run_nodes(ctx: WorkflowContext, calls: list[tuple[Any, NodeInput]]) -> list[NodeOutput]:
    """Run node steps concurrently (positions in call order); raise the first failure.

    Unlike ``ctx.gather``, a node's step does not wait for its completion to
    be committed: the superstep waits once for all of them (see ``run_graph``).
    """
    run = run_port(ctx)
    return await run_concurrently(
        [run.prepare_step(step, input, wait_commit=False) for step, input in calls]
    )


async def _run_superstep(
    steps: Mapping[str, Step[NodeInput, NodeOutput]],
    ctx: WorkflowContext,
    active: Sequence[str],
    state: dict[str, Any],
    n: int,
) -> list[tuple[str, NodeOutput]]:
    """Run the active nodes (in the given order) until none waits for a message.

    A node that waits for a message (``await ctx.recv(topic)`` in the node)
    completes its step with the topic; the body receives the message durably
    and runs the node again with it, so journal positions stay deterministic.
    """
    done: dict[str, NodeOutput] = {}
    replies: dict[str, list[Any]] = {}
    skips: dict[str, int] = {}
    pending = list(active)
    while pending:
        calls = [
            (steps[node], NodeInput(state, n, replies.get(node, []), skips.get(node, 0)))
            for node in pending
        ]
        try:
            outs = await _run_nodes(ctx, calls)
        except StepFailed as exc:
            if exc.error_type == "actorflow.GraphError":
                raise GraphError(exc.error_message) from exc
            raise
        waiting = []
        for node, out in zip(pending, outs, strict=True):
            if out.wait is None:
                done[node] = out
            else:
                replies.setdefault(node, []).append(await ctx.recv(out.wait))
                skips[node] = out.emitted
                waiting.append(node)
        pending = waiting
    return [(node, done[node]) for node in active]


async def run_graph(
    graph: GraphPlan,
    steps: Mapping[str, Step[NodeInput, NodeOutput]],
    ctx: WorkflowContext,
    input: Any,
) -> dict[str, Any]:
    """The body of a graph's workflow: run supersteps until no node is active.

    Args:
        graph: the graph's shape.
        steps: each node's step, by node name.
        ctx: the workflow body's context.
        input: the run's input (a dict of initial values, or None).

    Returns:
        The final state.

    Raises:
        GraphError: a graph rule was broken (bad input, a conflict, a node's
            bad command, or more than ``max_supersteps`` supersteps).
    """
    state = initial_state(graph.name, graph.keys, input)
    active = [graph.start]
    superstep = 0
    while active:
        if superstep >= graph.max_supersteps:
            raise GraphError(
                f"graph {graph.name!r} did not finish within max_supersteps="
                f"{graph.max_supersteps} (still active: {active}); route to af.END sooner "
                "or raise Graph(max_supersteps=...)"
            )
        outputs = await _run_superstep(steps, ctx, active, state, superstep)
        state = merge(graph.name, graph.keys, state, outputs, superstep)
        # One entry per superstep: the nodes' results and the merged state (the
        # checkpoint). One record instead of one per node keeps a superstep at
        # one SQLite commit of three records (step started, step completed, this).
        completed = [(node, output.updates) for node, output in outputs]
        _body_write(ctx, RESULTS_STREAM, ("superstep", superstep, completed, state))
        # The nodes' completions were only queued: the superstep is durable, and
        # the next one may depend on it, once this commit returns. One wait per
        # superstep, not one per node.
        await ctx.flush()
        active = next_active(graph.edges, outputs)
        superstep += 1
    _body_write(ctx, RESULTS_STREAM, ("end", superstep, state))
    return state
