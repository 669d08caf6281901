"""Declaring a graph and building it into a workflow: :class:`Graph` and :class:`CompiledGraph`.

A :class:`Graph` declares state keys and nodes; :meth:`Graph.build`
validates it and returns a :class:`CompiledGraph`, which *is* a registered
workflow, so ``rt.start(graph, input)`` works like any other run: its body
is :func:`~._run.run_graph`, and each node is a step
(:func:`~._stream.node_runner`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, overload

import attrs

from .._exceptions import GraphError, ValidationError
from .._registry import Backoff, Step, Workflow, register_workflow, step, validate_name
from ._run import run_graph
from ._stream import GraphStream, NodeFn, node_runner
from ._types import END, Key, NodeInput, NodeOutput

if TYPE_CHECKING:
    from .._context import WorkflowContext
    from .._runtime import Runtime

__all__ = ("CompiledGraph", "Graph")

_DEFAULT_BACKOFF = Backoff()

F = TypeVar("F", bound=NodeFn)


@attrs.frozen
class _Node:
    name: str
    fn: NodeFn = attrs.field(repr=False)
    to: tuple[str, ...] | None


# init=False: the attrs fields are the graph's state, not its constructor's arguments
# (type checkers read the __init__ below).
@attrs.define(eq=False, init=False)
class Graph:
    """A graph under construction: keys, nodes, edges and a start node.

    Args:
        name: the workflow name the built graph registers (``[A-Za-z0-9_-]``).
        keys: the state keys.
        max_supersteps: a run that needs more supersteps fails with ``GraphError``.

    Raises:
        ValidationError: bad name, duplicate key or bad ``max_supersteps``.
    """

    name: str
    keys: dict[str, Key]
    max_supersteps: int
    _nodes: dict[str, _Node]
    _edges: dict[str, list[str]]
    _start: str | None
    _step_options: dict[str, dict[str, Any]]

    def __init__(
        self, name: str, keys: list[Key] | tuple[Key, ...] = (), *, max_supersteps: int = 100
    ) -> None:
        validate_name(name, "graph")
        if not isinstance(max_supersteps, int) or max_supersteps < 1:
            raise ValidationError(f"max_supersteps must be an int >= 1, not {max_supersteps!r}")
        by_name: dict[str, Key] = {}
        for key in keys:
            if not isinstance(key, Key):
                raise ValidationError(f"Graph keys are af.Key or af.ListKey, not {key!r}")
            if key.name in by_name:
                raise ValidationError(f"graph {name!r} declares key {key.name!r} twice")
            by_name[key.name] = key
        self.__attrs_init__(name, by_name, max_supersteps, {}, {}, None, {})

    @overload
    def node(self, fn: F, /) -> F: ...
    @overload
    def node(
        self,
        /,
        *,
        to: list[str] | tuple[str, ...] | None = None,
        name: str | None = None,
        retries: int = 0,
        backoff: Backoff = ...,
        timeout: float | None = None,
        heartbeat_timeout: float | None = None,
    ) -> Callable[[F], F]: ...

    def node(
        self,
        fn: NodeFn | None = None,
        /,
        *,
        to: list[str] | tuple[str, ...] | None = None,
        name: str | None = None,
        retries: int = 0,
        backoff: Backoff = _DEFAULT_BACKOFF,
        timeout: float | None = None,
        heartbeat_timeout: float | None = None,
    ) -> Any:
        """Add a node: ``@g.node(to=["tools", af.END])`` on ``async def n(ctx, view)``.

        Args:
            fn: the node, when used bare.
            to: the targets the node may choose with ``Command.to`` (checked by
                ``build()`` and at run time; static edges need not be listed).
            name: the node's name; defaults to the function's ``__name__``.
            retries: how many times a failed run of the node is retried.
            backoff: delays between attempts.
            timeout: per-attempt limit in seconds.
            heartbeat_timeout: cancel and retry an attempt silent for this long.

        Raises:
            GraphError: a node of that name exists, or the name is ``af.END``.
            ValidationError: bad name or options, or not an ``async def``.
        """

        def decorate(fn: NodeFn) -> NodeFn:
            node_name = name if name is not None else getattr(fn, "__name__", "")
            validate_name(node_name, "node")
            if node_name == END:
                raise GraphError(f"{END!r} is reserved; name the node otherwise")
            if node_name in self._nodes:
                raise GraphError(f"graph {self.name!r} already has a node {node_name!r}")
            if not inspect.iscoroutinefunction(fn):
                raise ValidationError(f"node {node_name!r} must be an `async def (ctx, view)`")
            targets = None if to is None else tuple(to)
            self._nodes[node_name] = _Node(node_name, fn, targets)
            self._step_options[node_name] = {
                "retries": retries,
                "backoff": backoff,
                "timeout": timeout,
                "heartbeat_timeout": heartbeat_timeout,
            }
            return fn

        return decorate if fn is None else decorate(fn)

    def edge(self, source: str, target: str) -> Graph:
        """Add a static edge: after ``source`` runs, ``target`` runs in the next superstep."""
        self._edges.setdefault(source, [])
        if target not in self._edges[source]:
            self._edges[source].append(target)
        return self

    def start(self, node: str) -> Graph:
        """Make ``node`` the node of superstep 0."""
        self._start = node
        return self

    def build(self) -> CompiledGraph:
        """Validate the graph and register it as a workflow named after it.

        Raises:
            GraphError: no start node, an edge or ``to=`` naming an unknown
                node, or a node the start cannot reach; the message names it.
        """
        nodes = self._nodes
        if not nodes:
            raise GraphError(f"graph {self.name!r} has no nodes; add one with @g.node")
        if self._start is None:
            raise GraphError(f"graph {self.name!r} has no start node; call g.start(node)")
        if self._start not in nodes:
            raise GraphError(f"graph {self.name!r} starts at {self._start!r}, which is not a node")
        for source, targets in self._edges.items():
            if source not in nodes:
                raise GraphError(f"edge from {source!r} in graph {self.name!r}: no such node")
            for target in targets:
                if target != END and target not in nodes:
                    raise GraphError(
                        f"edge {source!r} -> {target!r} in graph {self.name!r}: no node {target!r}"
                    )
        for node in nodes.values():
            for target in node.to or ():
                if target != END and target not in nodes:
                    raise GraphError(
                        f"node {node.name!r} of graph {self.name!r} routes to unknown node "
                        f"{target!r}; add it with @g.node or fix to=[...]"
                    )
        successors = {
            n: [t for t in (*(nodes[n].to or ()), *self._edges.get(n, ())) if t != END]
            for n in nodes
        }
        seen, todo = {self._start}, [self._start]
        while todo:
            for t in successors[todo.pop()]:
                if t not in seen:
                    seen.add(t)
                    todo.append(t)
        unreachable = sorted(set(nodes) - seen)
        if unreachable:
            raise GraphError(
                f"node {unreachable[0]!r} of graph {self.name!r} is unreachable from the start "
                f"node {self._start!r}; add an edge or a to=[...] target leading to it"
            )
        return CompiledGraph._create(self)


@attrs.frozen
class CompiledGraph(Workflow[Any, dict[str, Any]]):
    """A validated graph, registered as a workflow: ``rt.start(graph, input)`` runs it.

    The input is a dict of initial values (key name → value, each merged into
    the key's default by its reducer) or None; the output is the final state.

    Attributes:
        keys: the state keys, by name.
        nodes: the node names, sorted.
        start: the start node.
        edges: static edges, source → targets.
        routes: the targets each node declared with ``to=``.
        max_supersteps: the superstep limit.
    """

    keys: dict[str, Key] = attrs.field(factory=dict, repr=False)
    nodes: tuple[str, ...] = ()
    start: str = ""
    edges: dict[str, tuple[str, ...]] = attrs.field(factory=dict, repr=False)
    routes: dict[str, tuple[str, ...] | None] = attrs.field(factory=dict, repr=False)
    max_supersteps: int = 100
    _steps: dict[str, Step[NodeInput, NodeOutput]] = attrs.field(factory=dict, repr=False)

    @classmethod
    def _create(cls, graph: Graph) -> CompiledGraph:
        steps: dict[str, Step[NodeInput, NodeOutput]] = {}
        for node in graph._nodes.values():
            step_name = f"{graph.name}-{node.name}"
            if len(step_name) > 64:
                raise GraphError(
                    f"node {node.name!r} of graph {graph.name!r}: the step name {step_name!r} "
                    "is longer than 64 characters; shorten the graph or node name"
                )
            allowed = {*(node.to or ()), *graph._edges.get(node.name, ())}
            runner = node_runner(graph.name, node.name, node.fn, graph.keys, allowed)
            steps[node.name] = step(name=step_name, **graph._step_options[node.name])(runner)
        holder: list[CompiledGraph] = []

        async def body(ctx: WorkflowContext, input: Any) -> dict[str, Any]:
            return await run_graph(holder[0], steps, ctx, input)

        compiled = cls(
            fn=body,
            name=graph.name,
            keys=dict(graph.keys),
            nodes=tuple(sorted(graph._nodes)),
            start=graph._start or "",
            edges={s: tuple(t) for s, t in graph._edges.items()},
            routes={n.name: n.to for n in graph._nodes.values()},
            max_supersteps=graph.max_supersteps,
            steps=steps,
        )
        holder.append(compiled)
        register_workflow(compiled)
        return compiled

    def stream(
        self, runtime: Runtime, input: Any = None, *, run_id: str | None = None
    ) -> GraphStream:
        """Start a run (or attach to ``run_id``) and iterate over its results.

        ``async for r in graph.stream(rt, input): ...`` yields one
        :class:`ExecutionResult` per node completion, one per ``ctx.emit``, and
        a final one with ``node == af.END`` and the final state as ``output``;
        the iteration ends once the run has completed. Breaking out of the loop,
        closing the iterator or cancelling the consumer cancels the run.

        Raises (while iterating):
            GraphError: the run broke a graph rule (conflict, max_supersteps).
            RunFailed: a node failed, or the run failed otherwise.
            RunCancelled: the run was cancelled.
        """
        return GraphStream(runtime, self, input, run_id)

    def to_mermaid(self) -> str:
        """A Mermaid flowchart of the graph: solid static edges, dotted ``to=`` routes."""
        lines = ["flowchart TD", "    __start__([start])", "    __end__([end])"]
        lines.extend(f"    {n}[{n}]" for n in self.nodes)
        lines.append(f"    __start__ --> {self.start}")
        for source in self.nodes:
            for target in self.edges.get(source, ()):
                lines.append(f"    {source} --> {target}")
            for target in self.routes.get(source) or ():
                if target not in self.edges.get(source, ()):
                    lines.append(f"    {source} -.-> {target}")
        return "\n".join(lines) + "\n"
