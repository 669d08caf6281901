"""Graphs and agent loops: Pregel / BSP supersteps over durable steps.

A :class:`Graph` declares state keys and nodes; :meth:`Graph.build` validates
it and returns a :class:`CompiledGraph`, which *is* a registered workflow, so
``rt.start(graph, input)`` works like any other run. How a run executes:

- The workflow body keeps the state (a dict, key name → value). Each
  superstep, every active node runs as a step (``ctx.gather`` over the nodes
  in name order, so journal positions are deterministic) with the state as it
  was at the start of the superstep.
- A node returns an :class:`Command`: updates and targets. At the barrier the
  body merges the updates node by node in name order, each key by its reducer;
  the union of the targets (``Command.to`` and static ``Graph.edge``) is the
  next superstep. ``END`` ends a branch; the run ends when nothing is active.
- Durability: every node call is a step, so a node that finished is never run
  again; recovery replays the body, which gets each finished node's recorded
  command back and re-merges it. After each superstep the body appends the
  merged state to the durable stream ``graph:state`` (the per-superstep
  checkpoint, readable with ``handle.read_stream("graph:state")``).
- Results: node completions, ``ctx.emit`` values and the final ``END`` result
  are appended to the durable stream ``graph:results``, which
  :meth:`CompiledGraph.stream` reads: lossless and in order, and it can be
  re-read from the start after a crash. Completions and ``END`` are written by
  the body (never repeated by recovery); emits are written by the node's step
  attempt, so an attempt interrupted by a crash keeps its emits and the rerun
  emits again after them (§4 of the spec).
- Human in the loop: ``await ctx.recv(topic)`` in a node does not block the
  step. When no message has been given to the node yet, the node stops
  (internally) and its step completes with "waiting on topic"; the body then
  receives the message durably with ``WorkflowContext.recv`` (§7) and runs the
  node again from its start, where that ``recv`` returns the message. So, as
  with LangGraph's ``interrupt``, the code of a node before its ``recv`` runs
  again after the reply; its emits from before the ``recv`` are not repeated.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from ._exceptions import GraphError, ValidationError
from ._registry import Backoff, Step, Workflow, _workflows, step, validate_name

if TYPE_CHECKING:
    from ._context import WorkflowContext
    from ._graph_run import GraphStream, NodeContext, NodeInput, NodeOutput
    from ._runtime import Runtime

__all__ = ("END", "Command", "CompiledGraph", "Graph", "Key", "ListKey", "View")

END = "__end__"
"""The target that ends a branch: ``Command().to(af.END)``; also the node of the final result."""

_DEFAULT_BACKOFF = Backoff()

NodeFn = Callable[["NodeContext", "View"], Awaitable["Command | None"]]


# -- keys and reducers -----------------------------------------------------------------


def _replace(current: Any, update: Any) -> Any:
    return update


def _append(current: Any, update: Any) -> Any:
    return [*current, *update]


@attrs.frozen
class Key:
    """A state key: its name, its default, and the reducer that merges updates into it.

    ``af.Key("status", default="")`` replaces (two nodes setting it in one
    superstep is a :class:`~actorflow.GraphError`). Pass ``reducer=fn`` to
    merge instead: ``fn(current, update) -> new``, called once per update, in
    node-name order, so it need not be commutative to be deterministic.

    Attributes:
        name: the key's name in the state dict.
        default: its value before any update (deep-copied per run).
        reducer: ``fn(current, update)``, or None to replace.
    """

    name: str
    default: Any = None
    reducer: Callable[[Any, Any], Any] | None = attrs.field(default=None, kw_only=True)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValidationError(f"a state key needs a non-empty str name, not {self.name!r}")
        if self.reducer is not None and not callable(self.reducer):
            raise ValidationError(f"reducer of key {self.name!r} must be callable")

    @property
    def replaces(self) -> bool:
        """True when an update replaces the value (no reducer)."""
        return self.reducer is None

    @property
    def appends(self) -> bool:
        """True for a :class:`ListKey`."""
        return False

    def initial(self) -> Any:
        """A fresh copy of the default, for a new run."""
        return copy.deepcopy(self.default)

    def reduce(self, current: Any, update: Any) -> Any:
        """Merge one update into the current value."""
        return (self.reducer or _replace)(current, update)


@attrs.frozen
class ListKey(Key):
    """A list-valued key whose updates append: ``Command().append(messages, m1, m2)``.

    Its default is ``[]``; ``Command().set(key, [a, b])`` appends ``a`` and
    ``b`` too, as LangGraph's ``operator.add`` channels do.
    """

    def __init__(self, name: str) -> None:
        self.__attrs_init__(name, None, reducer=_append)  # type: ignore[attr-defined]

    @property
    def replaces(self) -> bool:
        """Always False: list keys append."""
        return False

    @property
    def appends(self) -> bool:
        """Always True."""
        return True

    def initial(self) -> Any:
        """A new empty list."""
        return []


# -- what nodes see and return ----------------------------------------------------------


def _key_name(key: Key | str) -> str:
    if isinstance(key, Key):
        return key.name
    if isinstance(key, str):
        return key
    raise ValidationError(f"a state key is an af.Key or its name, not {key!r}")


class Command:
    """What a node returns: state updates and where to go next.

    ``af.Command().set(status, "done").append(messages, reply).to("tools")``.
    Each builder method returns the command itself.
    """

    __slots__ = ("_appended", "_targets", "_updates")

    def __init__(self) -> None:
        self._updates: dict[str, Any] = {}
        self._appended: set[str] = set()
        self._targets: list[str] = []

    def __repr__(self) -> str:
        return f"Command(updates={self._updates!r}, to={self._targets!r})"

    @property
    def updates(self) -> dict[str, Any]:
        """The updates, key name → value (appended values as a list)."""
        return dict(self._updates)

    @property
    def targets(self) -> list[str]:
        """The chosen targets, in the order given."""
        return list(self._targets)

    def set(self, key: Key | str, value: Any) -> Command:
        """Update ``key`` with ``value`` (merged by the key's reducer at the barrier).

        Setting a key twice in one command keeps the later value.
        """
        name = _key_name(key)
        self._updates[name] = value
        self._appended.discard(name)
        return self

    def append(self, key: Key | str, *values: Any) -> Command:
        """Append ``values`` to the :class:`ListKey` ``key``."""
        name = _key_name(key)
        if name in self._appended:
            self._updates[name].extend(values)
        else:
            self._updates[name] = list(values)
            self._appended.add(name)
        return self

    def to(self, *targets: str) -> Command:
        """Route to ``targets`` (node names or ``af.END``) in the next superstep."""
        for target in targets:
            if not isinstance(target, str):
                raise ValidationError(f"Command.to() takes node names, not {target!r}")
            if target not in self._targets:
                self._targets.append(target)
        return self


class View(Mapping[str, Any]):
    """The state as it was at the start of the superstep, read-only: ``view[messages]``.

    Index it with an :class:`Key` or a key name. The values are shared with the
    run: do not mutate them; return updates in a :class:`Command` instead.

    Attributes:
        superstep: the number of the superstep this view belongs to, from 0.
    """

    __slots__ = ("_state", "superstep")

    def __init__(self, state: Mapping[str, Any], superstep: int) -> None:
        self._state = state
        self.superstep = superstep

    def __repr__(self) -> str:
        return f"View(superstep={self.superstep}, state={dict(self._state)!r})"

    def __getitem__(self, key: Key | str) -> Any:
        name = _key_name(key)
        try:
            return self._state[name]
        except KeyError:
            raise KeyError(
                f"the graph has no state key {name!r}; declare it in Graph(keys=[...])"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._state)

    def __len__(self) -> int:
        return len(self._state)


# -- definition ------------------------------------------------------------------------


@attrs.frozen
class _Node:
    name: str
    fn: NodeFn = attrs.field(repr=False)
    to: tuple[str, ...] | None
    step: Step[NodeInput, NodeOutput] | None = attrs.field(default=None, repr=False)


@attrs.define(eq=False)
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
        self.__attrs_init__(name, by_name, max_supersteps, {}, {}, None, {})  # type: ignore[attr-defined]

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
            retries, backoff, timeout, heartbeat_timeout: step options of the node.

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


# -- the compiled graph: a workflow ------------------------------------------------------


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
        from ._graph_run import node_runner, run_graph

        steps: dict[str, Step[NodeInput, NodeOutput]] = {}
        for node in graph._nodes.values():
            step_name = f"{graph.name}-{node.name}"
            if len(step_name) > 64:
                raise GraphError(
                    f"node {node.name!r} of graph {graph.name!r}: the step name {step_name!r} "
                    "is longer than 64 characters; shorten the graph or node name"
                )
            steps[node.name] = step(name=step_name, **graph._step_options[node.name])(
                node_runner(node, graph)
            )
        holder: list[CompiledGraph] = []

        async def body(ctx: WorkflowContext, input: Any) -> dict[str, Any]:
            return await run_graph(holder[0], ctx, input)

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
        _workflows[compiled.name] = compiled
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
        from ._graph_run import GraphStream

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
