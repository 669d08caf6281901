"""Graphs and agent loops: Pregel / BSP supersteps over durable steps.

Dependencies point one way, each module importing only those before it:
``_types`` (keys, commands, views, results) -> ``_algo`` (the pure superstep
algebra: merge, conflicts, next active set) -> ``_run`` (executing
supersteps in the workflow body) -> ``_stream`` (the node context, and
reading a run's results) -> ``_builder`` (:class:`Graph`, validation,
:class:`CompiledGraph`).

How a run executes: each superstep, every active node runs as a step with
the state as it was at the superstep's start; at the barrier their updates
are merged in node-name order, each key by its reducer, and the union of
their targets (``Command.to`` and static ``Graph.edge``) is the next
superstep. ``END`` ends a branch; the run ends when nothing is active. After
each superstep the body appends the merged state to the durable results
stream ``graph:results`` (the per-superstep checkpoint), which
:meth:`CompiledGraph.stream` reads.
"""

from ._builder import CompiledGraph, Graph
from ._stream import GraphStream, NodeContext, last
from ._types import END, Command, ExecutionResult, Key, ListKey, View

__all__ = (
    "END",
    "Command",
    "CompiledGraph",
    "ExecutionResult",
    "Graph",
    "GraphStream",
    "Key",
    "ListKey",
    "NodeContext",
    "View",
    "last",
)
