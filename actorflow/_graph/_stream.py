"""What runs inside a node and what reads a run's results: the node context and GraphStream.

A node's step calls the node with a :class:`NodeContext`; what the node
emits goes to the run's durable results stream at once. :class:`GraphStream`
reads that stream: node completions, emits, and the final ``END`` result,
lossless and in order, re-readable from the start after a crash.
Completions and ``END`` are written by the workflow body (never repeated by
recovery); emits are written by the node's step attempt, so an attempt
interrupted by a crash keeps its emits and the rerun emits again after them
(§4 of the spec).

Human in the loop: ``await ctx.recv(topic)`` in a node does not block the
step. When no message has been given to the node yet, the node stops
(internally) and its step completes with "waiting on topic"; the body then
receives the message durably with ``WorkflowContext.recv`` (§7) and runs the
node again from its start, where that ``recv`` returns the message. So, as
with LangGraph's ``interrupt``, the code of a node before its ``recv`` runs
again after the reply; its emits from before the ``recv`` are not repeated.

The three functions under "reaching into the runtime" are the only places
that use the runtime's private parts.
"""

from __future__ import annotations

import weakref
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Coroutine,
    Mapping,
)
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from .._codec import decode_value, encode_value

# Imported at run time, not only for type checking: the node steps' annotations
# must resolve, so that recovery decodes recorded outputs as NodeOutput.
from .._context import StepContext, attempt_state
from .._exceptions import GraphError, RunFailed
from .._follow import follow
from .._validate import validate_key
from ..abc import StreamPage
from ._algo import check_output
from ._types import (
    END,
    RESULTS_STREAM,
    Command,
    ExecutionResult,
    Key,
    NodeInput,
    NodeOutput,
    View,
    command_output,
)

if TYPE_CHECKING:
    from .._handle import RunHandle
    from .._registry import Workflow
    from .._runtime import Runtime

__all__ = ("GraphStream", "NodeContext", "NodeFn", "last", "node_runner")

T = TypeVar("T")

NodeFn = Callable[["NodeContext", View], Awaitable["Command | None"]]
"""A node: ``async def node(ctx: af.NodeContext, view: af.View) -> af.Command | None``."""


# -- reaching into the runtime ----------------------------------------------------------


def _write_from_step(inner: StepContext, key: str, value: object) -> None:
    """Append to a durable stream from a step attempt without awaiting (``emit`` is sync)."""
    attempt_state(inner).run.write_stream(key, value, inner.step_id, inner.attempt)


def _cancel_now(runtime: Runtime, run_id: str) -> None:
    """Cancel the run if it executes here, without awaiting (from a finalizer too)."""
    runtime.cancel_nowait(run_id)


def _committed_reader(runtime: Runtime) -> Any:
    """The journal's synchronous read of its committed tail in memory (it may say None)."""
    return runtime.journal.read_stream_nowait


# -- inside a node ----------------------------------------------------------------------


class _Interrupt(BaseException):
    """A node asked for a message it has not been given yet.

    A ``BaseException`` so that a node's ``except Exception`` does not swallow it.
    """

    def __init__(self, topic: str) -> None:
        super().__init__(topic)
        self.topic = topic


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
        _write_from_step(self._inner, RESULTS_STREAM, ("emit", self.superstep, self.node, updates))

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


def node_runner(
    graph: str, node: str, fn: NodeFn, keys: Mapping[str, Key], allowed: Collection[str]
) -> Callable[[StepContext, NodeInput], Coroutine[Any, Any, NodeOutput]]:
    """The step function of node ``node``: call ``fn`` and record what it returned.

    Args:
        graph: the graph's name, for messages.
        node: the node's name.
        fn: the node.
        keys: the graph's state keys, by name.
        allowed: the targets the node may route to (besides ``END``).
    """

    async def run_node(ctx: StepContext, input: NodeInput) -> NodeOutput:
        nctx = NodeContext(ctx, node, input)
        try:
            command = await fn(nctx, View(input.state, input.superstep))
        except _Interrupt as interrupt:
            return NodeOutput(wait=interrupt.topic, emitted=nctx._emitted)
        if command is None:
            command = Command()
        if not isinstance(command, Command):
            raise GraphError(f"node {node!r} returned {command!r}; return an af.Command or None")
        output = command_output(command, nctx._emitted)
        check_output(graph, node, output, keys, allowed)
        # What recovery replays is the decoded record: run on the same form live.
        normalized: NodeOutput = decode_value(
            encode_value(output, f"the updates of node {node!r}"), NodeOutput
        )
        return normalized

    run_node.__name__ = node
    return run_node


# -- reading the results ----------------------------------------------------------------


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


class GraphStream(AsyncIterator[ExecutionResult]):
    """The async iterator :meth:`CompiledGraph.stream` returns.

    It starts the run on the first ``__anext__`` and reads the run's durable
    results stream. Leaving early cancels the run: ``aclose()`` (or ``async
    with``) waits until it has ended; dropping the iterator after ``break``
    cancels it at once; a consumer cancelled while waiting cancels it too.

    Attributes:
        handle: the run's handle, once started (None before).
    """

    def __init__(
        self,
        runtime: Runtime,
        graph: Workflow[Any, dict[str, Any]],
        input: Any,
        run_id: str | None,
    ):
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
        self._nowait = _committed_reader(runtime)

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
        run_id = self.handle.run_id

        async def look() -> StreamPage | None:
            # From the journal's committed tail in memory when it has one: no
            # worker-thread hop between an emit's commit and its result.
            page = self._nowait(run_id, RESULTS_STREAM, self._offset, 1000)
            if page is None:
                page = await journal.read_stream(run_id, RESULTS_STREAM, self._offset)
            return page if page.entries or page.closed else None

        while not self._buffer:
            if self._closed_page:
                await self._finish()
                raise StopAsyncIteration
            page = await follow(journal, look)
            self._buffer = [r for e in page.entries for r in _results(e.value)]
            self._offset += len(page.entries)
            self._closed_page = page.closed
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
