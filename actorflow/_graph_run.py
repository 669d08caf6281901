"""Running a compiled graph: node steps, the superstep loop, and streaming results.

See :mod:`actorflow._graph` for the semantics; this module holds what runs them.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import attrs
import msgspec

from ._codec import decode_value, encode_value

# Imported at run time, not only for type checking: the node steps' annotations
# must resolve, so that recovery decodes recorded outputs as NodeOutput.
from ._context import StepContext, WorkflowContext, attempt_state, run_concurrently, run_port
from ._exceptions import GraphError, RunFailed, StepFailed
from ._graph import END, Command, View
from ._validate import validate_key

if TYPE_CHECKING:
    from ._graph import CompiledGraph, Graph, _Node
    from ._handle import RunHandle
    from ._runtime import Runtime

__all__ = (
    "RESULTS_STREAM",
    "ExecutionResult",
    "GraphStream",
    "NodeContext",
    "NodeInput",
    "NodeOutput",
    "last",
    "node_runner",
    "run_graph",
)

T = TypeVar("T")

RESULTS_STREAM = "graph:results"


class _Interrupt(BaseException):
    """A node asked for a message it has not been given yet.

    A ``BaseException`` so that a node's ``except Exception`` does not swallow it.
    """

    def __init__(self, topic: str) -> None:
        super().__init__(topic)
        self.topic = topic


class NodeInput(msgspec.Struct, frozen=True):
    """The input of a node's step: the state at the superstep's start, and replies so far."""

    state: dict[str, Any]
    superstep: int
    replies: list[Any] = []
    skip_emits: int = 0


class NodeOutput(msgspec.Struct, frozen=True):
    """The recorded output of a node's step: its command, or the topic it waits on."""

    updates: dict[str, Any] = {}
    appended: list[str] = []
    targets: list[str] = []
    wait: str | None = None
    emitted: int = 0


class NodeContext:
    """What a node can do: stream, emit results, and wait for a human.

    Attributes:
        run_id: the run.
        node: this node's name.
        superstep: the current superstep, from 0.
        attempt: the attempt of this node's step, from 1.
    """

    __slots__ = ("_emitted", "_inner", "_input", "_replies_used", "node", "superstep")

    def __init__(self, inner: StepContext, node: str, input: NodeInput) -> None:
        self._inner = inner
        self._input = input
        self._emitted = 0
        self._replies_used = 0
        self.node = node
        self.superstep = input.superstep

    def __repr__(self) -> str:
        return (
            f"<NodeContext run_id={self.run_id!r} node={self.node!r} "
            f"superstep={self.superstep} attempt={self.attempt}>"
        )

    @property
    def run_id(self) -> str:
        """The run this node belongs to."""
        return self._inner.run_id

    @property
    def attempt(self) -> int:
        """This attempt's number, from 1."""
        return self._inner.attempt

    def emit(self, updates: Any) -> None:
        """Yield an intermediate result: ``stream()`` gives ``ExecutionResult(node, updates)``.

        It does not change the state. The result is appended to the durable
        results stream right away (returns once queued), so consumers get it
        before the node finishes.

        Raises:
            EncodeError: ``updates`` is not msgspec-encodable (nothing is written).
        """
        self._emitted += 1
        if self._emitted <= self._input.skip_emits:
            return  # already emitted before this node waited in recv()
        inner = self._inner
        attempt_state(inner).run.write_stream(
            RESULTS_STREAM,
            ("emit", self.superstep, self.node, updates),
            inner.step_id,
            inner.attempt,
        )

    async def recv(self, topic: str = "default") -> Any:
        """Wait durably for the next message sent to the run on ``topic`` (§7).

        The node stops here and the run waits at the superstep's barrier; when
        the message comes, the node runs again from its start and this call
        returns it. Code before the call therefore runs again (emits do not).

        Raises:
            ValidationError: bad topic.
        """
        validate_key(topic, "topic")
        index = self._replies_used
        if index < len(self._input.replies):
            self._replies_used += 1
            return self._input.replies[index]
        raise _Interrupt(topic)

    def heartbeat(self) -> None:
        """Tell the runtime this attempt is alive (see ``heartbeat_timeout``)."""
        self._inner.heartbeat()

    async def put_stream(self, data: object) -> None:
        """Publish ``data`` live on ``stream.<run_id>.<step_id>`` (nothing is stored)."""
        await self._inner.put_stream(data)

    async def write_stream(self, key: str, value: object) -> None:
        """Append ``value`` to the run's durable stream ``key`` (see ``StepContext``)."""
        await self._inner.write_stream(key, value)

    async def flush(self) -> None:
        """Return once everything this run queued in the journal is committed."""
        await self._inner.flush()


@attrs.frozen
class ExecutionResult:
    """One item of :meth:`CompiledGraph.stream`.

    Attributes:
        node: the node that finished or emitted, or ``af.END`` for the final result.
        updates: the node's state updates (key → value; appends as a list) when
            it finished, the emitted value for an emit, ``{}`` for ``END``.
        output: the final state for ``END``; None otherwise.
        superstep: the superstep it belongs to (for ``END``: how many ran).
    """

    node: str
    updates: Any
    output: Any
    superstep: int


def node_runner(node: _Node, graph: Graph) -> Callable[[StepContext, NodeInput], Awaitable[Any]]:
    keys = graph.keys
    allowed = {*(node.to or ()), *graph._edges.get(node.name, ())}

    async def run_node(ctx: StepContext, input: NodeInput) -> NodeOutput:
        nctx = NodeContext(ctx, node.name, input)
        try:
            command = await node.fn(nctx, View(input.state, input.superstep))
        except _Interrupt as interrupt:
            return NodeOutput(wait=interrupt.topic, emitted=nctx._emitted)
        if command is None:
            command = Command()
        if not isinstance(command, Command):
            raise GraphError(
                f"node {node.name!r} returned {command!r}; return an af.Command or None"
            )
        for name in command._updates:
            if name not in keys:
                raise GraphError(
                    f"node {node.name!r} updated unknown key {name!r}; declare it in "
                    f"Graph({graph.name!r}, keys=[...])"
                )
            if name in command._appended and not keys[name].appends:
                raise GraphError(
                    f"node {node.name!r} appended to key {name!r}, which is not an af.ListKey"
                )
        for target in command._targets:
            if target != END and target not in allowed:
                raise GraphError(
                    f"node {node.name!r} routed to {target!r}, which is not among its targets "
                    f"{sorted(allowed)!r}; list it in @g.node(to=[...])"
                )
        output = NodeOutput(
            updates=command._updates,
            appended=sorted(command._appended),
            targets=command._targets,
            emitted=nctx._emitted,
        )
        # What recovery replays is the decoded record: run on the same form live.
        normalized: NodeOutput = decode_value(
            encode_value(output, f"the updates of node {node.name!r}"), NodeOutput
        )
        return normalized

    run_node.__name__ = node.name
    return run_node


def _initial_state(graph: CompiledGraph, input: Any) -> dict[str, Any]:
    state = {name: key.initial() for name, key in graph.keys.items()}
    if input is None:
        return state
    if not isinstance(input, Mapping):
        raise GraphError(
            f"the input of graph {graph.name!r} is a dict of key name -> value or None, "
            f"not {input!r}"
        )
    for name, value in input.items():
        if name not in graph.keys:
            raise GraphError(f"the input of graph {graph.name!r} sets unknown key {name!r}")
        state[name] = graph.keys[name].reduce(state[name], value)
    return state


def _merge(
    graph: CompiledGraph,
    state: dict[str, Any],
    outputs: list[tuple[str, NodeOutput]],
    superstep: int,
) -> dict[str, Any]:
    """Merge the nodes' updates into a new state, node by node in the given (name) order."""
    new = dict(state)
    writers: dict[str, str] = {}
    for node, output in outputs:
        for name, value in output.updates.items():
            key = graph.keys[name]
            if key.replaces:
                if name in writers:
                    raise GraphError(
                        f"nodes {writers[name]!r} and {node!r} both set key {name!r} in "
                        f"superstep {superstep} of graph {graph.name!r}; give it a reducer "
                        "(af.Key(..., reducer=fn) or af.ListKey) or let one node write it"
                    )
                writers[name] = node
            new[name] = key.reduce(new[name], value)
    return new


def _next_active(graph: CompiledGraph, outputs: list[tuple[str, NodeOutput]]) -> list[str]:
    targets: set[str] = set()
    for node, output in outputs:
        targets.update(output.targets)
        targets.update(graph.edges.get(node, ()))
    targets.discard(END)
    return sorted(targets)


async def _run_superstep(
    graph: CompiledGraph, ctx: WorkflowContext, active: list[str], state: dict[str, Any], n: int
) -> list[tuple[str, NodeOutput]]:
    """Run the active nodes (name order) until none waits for a message; return their outputs."""
    done: dict[str, NodeOutput] = {}
    replies: dict[str, list[Any]] = {}
    skips: dict[str, int] = {}
    pending = active
    while pending:
        calls = [
            (graph._steps[node], NodeInput(state, n, replies.get(node, []), skips.get(node, 0)))
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


async def _run_nodes(ctx: WorkflowContext, calls: list[tuple[Any, NodeInput]]) -> list[NodeOutput]:
    """Run node steps concurrently (positions in call order); raise the first failure.

    Unlike ``ctx.gather``, a node's step does not wait for its completion to
    be committed: the superstep waits once for all of them (see ``run_graph``).
    """
    run = run_port(ctx)
    return await run_concurrently(
        [run.prepare_step(step, input, wait_commit=False) for step, input in calls]
    )


def _body_write(ctx: WorkflowContext, key: str, value: object) -> None:
    """``ctx.write_stream`` without its checkpoint.

    The journal commits once per event-loop tick: a checkpoint here would let
    the records queued so far be committed on their own, and the superstep
    would pay a second commit. Without one, the superstep's records share the
    commit that ``ctx.flush()`` waits for.
    """
    run_port(ctx).write_stream(key, value, "main", 1)


async def run_graph(graph: CompiledGraph, ctx: WorkflowContext, input: Any) -> dict[str, Any]:
    state = _initial_state(graph, input)
    active = [graph.start]
    superstep = 0
    while active:
        if superstep >= graph.max_supersteps:
            raise GraphError(
                f"graph {graph.name!r} did not finish within max_supersteps="
                f"{graph.max_supersteps} (still active: {active}); route to af.END sooner "
                "or raise Graph(max_supersteps=...)"
            )
        outputs = await _run_superstep(graph, ctx, active, state, superstep)
        state = _merge(graph, state, outputs, superstep)
        # One entry per superstep: the nodes' results and the merged state (the
        # checkpoint). One record instead of one per node keeps a superstep at
        # one SQLite commit of three records (step started, step completed, this).
        completed = [(node, output.updates) for node, output in outputs]
        _body_write(ctx, RESULTS_STREAM, ("superstep", superstep, completed, state))
        # The nodes' completions were only queued: the superstep is durable, and
        # the next one may depend on it, once this commit returns. One wait per
        # superstep, not one per node.
        await ctx.flush()
        active = _next_active(graph, outputs)
        superstep += 1
    _body_write(ctx, RESULTS_STREAM, ("end", superstep, state))
    return state


# -- streaming results -----------------------------------------------------------------


def _results(entry: Any) -> list[ExecutionResult]:
    """The results one entry of the results stream stands for."""
    match entry:
        case ["emit", superstep, node, updates]:
            return [ExecutionResult(node, updates, None, superstep)]
        case ["superstep", superstep, completed, _state]:
            return [ExecutionResult(node, updates, None, superstep) for node, updates in completed]
        case ["end", superstep, state]:
            return [ExecutionResult(END, {}, state, superstep)]
    raise GraphError(f"unexpected entry in the results stream: {entry!r}")


def _cancel_now(runtime: Runtime, run_id: str) -> None:
    runtime.cancel_nowait(run_id)


class GraphStream(AsyncIterator[ExecutionResult]):
    """The async iterator :meth:`CompiledGraph.stream` returns.

    It starts the run on the first ``__anext__`` and reads the run's durable
    results stream. Leaving early cancels the run: ``aclose()`` (or ``async
    with``) waits until it has ended; dropping the iterator after ``break``
    cancels it at once; a consumer cancelled while waiting cancels it too.

    Attributes:
        handle: the run's handle, once started (None before).
    """

    def __init__(self, runtime: Runtime, graph: CompiledGraph, input: Any, run_id: str | None):
        self._runtime = runtime
        self._graph = graph
        self._input = input
        self._run_id = run_id
        self.handle: RunHandle[dict[str, Any]] | None = None
        self._offset = 0
        self._buffer: list[Any] = []
        self._closed_page = False
        self._ended = False  # saw END, or the run ended otherwise: nothing to cancel
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._nowait = runtime.journal.read_stream_nowait

    def __repr__(self) -> str:
        run = self.handle.run_id if self.handle else None
        return f"<GraphStream graph={self._graph.name!r} run_id={run!r} offset={self._offset}>"

    def __aiter__(self) -> GraphStream:
        return self

    async def __aenter__(self) -> GraphStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def __anext__(self) -> ExecutionResult:
        try:
            return await self._next()
        except StopAsyncIteration:
            raise
        except BaseException:
            self._cancel_run()
            raise

    async def _next(self) -> ExecutionResult:
        if self._ended:
            raise StopAsyncIteration
        if self.handle is None:
            self.handle = await self._runtime.start(self._graph, self._input, run_id=self._run_id)
            self._finalizer = weakref.finalize(self, _cancel_now, self._runtime, self.handle.run_id)
            self._finalizer.atexit = False
        journal = self._runtime.journal
        while not self._buffer:
            if self._closed_page:
                await self._finish()
                raise StopAsyncIteration
            seen = journal.committed
            run_id = self.handle.run_id
            # From the journal's committed tail in memory when it has one: no
            # worker-thread hop between an emit's commit and its result.
            page = self._nowait(run_id, RESULTS_STREAM, self._offset, 1000)
            if page is None:
                page = await journal.read_stream(run_id, RESULTS_STREAM, self._offset)
            self._buffer = [r for e in page.entries for r in _results(e.value)]
            self._offset += len(page.entries)
            self._closed_page = page.closed
            if not page.entries and not page.closed:
                await journal.wait_for_commit(seen)
        result: ExecutionResult = self._buffer.pop(0)
        if result.node == END:
            self._buffer.clear()
            self._closed_page = True
        return result

    async def _finish(self) -> None:
        """The results stream ended: wait for the run's outcome and raise it if it failed."""
        assert self.handle is not None
        try:
            await self.handle.result()
        except RunFailed as exc:
            self._mark_ended()
            if exc.error_type == "actorflow.GraphError":
                raise GraphError(exc.error_message) from exc
            raise
        except BaseException:
            self._mark_ended()
            raise
        self._mark_ended()

    def _mark_ended(self) -> None:
        self._ended = True
        if self._finalizer is not None:
            self._finalizer.detach()

    def _cancel_run(self) -> None:
        if not self._ended and self.handle is not None:
            self._mark_ended()
            _cancel_now(self._runtime, self.handle.run_id)

    async def aclose(self) -> None:
        """Cancel the run unless it ended, and wait until it has ended."""
        if self.handle is None or self._ended:
            self._ended = True
            return
        self._mark_ended()
        with anyio.CancelScope(shield=True):
            await self.handle.cancel()


async def last(results: AsyncIterable[T]) -> T:
    """The last item of ``results``: ``await af.last(graph.stream(rt, input))`` → the END result.

    Raises:
        ValueError: ``results`` was empty.
    """
    found, item = False, None
    async for item in results:  # noqa: B007 - the last one is what we want
        found = True
    if not found:
        raise ValueError("last() got an empty iterable")
    return item  # type: ignore[return-value]
