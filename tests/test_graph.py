"""Graphs: validation, reducers, supersteps, streaming, cancellation, human in the loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

import actorflow as af

# -- validation ---------------------------------------------------------------------------


async def _noop(ctx: af.NodeContext, view: af.View) -> None:
    return None


def test_build_without_start_names_the_graph() -> None:
    g = af.Graph("v-nostart")
    g.node(_noop, name="a")
    with pytest.raises(af.GraphError, match=r"'v-nostart' has no start node"):
        g.build()


def test_build_rejects_a_start_that_is_not_a_node() -> None:
    g = af.Graph("v-badstart")
    g.node(_noop, name="a")
    g.start("b")
    with pytest.raises(af.GraphError, match=r"starts at 'b', which is not a node"):
        g.build()


def test_build_rejects_unknown_targets_naming_the_node() -> None:
    g = af.Graph("v-unknown")
    g.node(_noop, name="a", to=["ghost"])
    g.start("a")
    with pytest.raises(af.GraphError, match=r"node 'a' .* routes to unknown node 'ghost'"):
        g.build()
    g2 = af.Graph("v-unknown-edge")
    g2.node(_noop, name="a")
    g2.edge("a", "ghost").start("a")
    with pytest.raises(af.GraphError, match=r"'a' -> 'ghost'"):
        g2.build()


def test_build_rejects_unreachable_nodes() -> None:
    g = af.Graph("v-unreach")
    g.node(_noop, name="a", to=[af.END])
    g.node(_noop, name="island")
    g.start("a")
    with pytest.raises(af.GraphError, match=r"node 'island' .* unreachable"):
        g.build()


def test_node_names_are_validated() -> None:
    g = af.Graph("v-names")
    g.node(_noop, name="a")
    with pytest.raises(af.GraphError, match="already has a node 'a'"):
        g.node(_noop, name="a")
    with pytest.raises(af.ValidationError):
        g.node(_noop, name="bad name")
    with pytest.raises(af.GraphError, match="reserved"):
        g.node(_noop, name=af.END)
    with pytest.raises(af.ValidationError):
        af.Graph("bad graph")
    with pytest.raises(af.ValidationError, match="twice"):
        af.Graph("v-dup", keys=[af.Key("k"), af.ListKey("k")])


def test_a_compiled_graph_is_a_workflow_with_a_mermaid_rendering() -> None:
    g = af.Graph("v-mermaid")

    @g.node(to=["b", af.END])
    async def a(ctx: af.NodeContext, view: af.View) -> None:
        return None

    g.node(_noop, name="b")
    g.edge("b", "a").start("a")
    compiled = g.build()
    assert isinstance(compiled, af.Workflow)
    assert compiled.nodes == ("a", "b")
    text = compiled.to_mermaid()
    assert text.startswith("flowchart TD\n")
    for line in ("__start__ --> a", "a -.-> b", "a -.-> __end__", "b --> a"):
        assert f"    {line}\n" in text


# -- running --------------------------------------------------------------------------


messages = af.ListKey("messages")
count = af.Key("count", 0)
total = af.Key("total", 0, reducer=lambda a, b: a + b)

loop = af.Graph("t-loop", keys=[messages, count])


@loop.node(to=["b", af.END])
async def a(ctx: af.NodeContext, view: af.View) -> af.Command:
    ctx.emit({"token": view[count]})
    more = view[count] < 2
    return (
        af.Command()
        .append(messages, f"a{view[count]}")
        .set(count, view[count] + 1)
        .to("b" if more else af.END)
    )


@loop.node
async def b(ctx: af.NodeContext, view: af.View) -> af.Command:
    return af.Command().append(messages, "b")


loop.edge("b", "a").start("a")
looped = loop.build()


async def test_stream_yields_emits_completions_and_end_in_order() -> None:
    async with af.Runtime() as rt:
        results = [r async for r in looped.stream(rt, {"messages": ["hi"]})]
    assert [(r.node, r.superstep) for r in results] == [
        ("a", 0),
        ("a", 0),
        ("b", 1),
        ("a", 2),
        ("a", 2),
        ("b", 3),
        ("a", 4),
        ("a", 4),
        (af.END, 5),
    ]
    assert results[0].updates == {"token": 0}  # the emit comes before the completion
    assert results[1].updates == {"messages": ["a0"], "count": 1}
    final = results[-1]
    assert final.output == {"messages": ["hi", "a0", "b", "a1", "b", "a2"], "count": 3}
    assert final.updates == {}


async def test_start_and_last_agree_and_state_is_checkpointed_per_superstep() -> None:
    async with af.Runtime() as rt:
        final = await af.last(looped.stream(rt, None, run_id="r1"))
        handle = await rt.start(looped, None, run_id="r2")
        assert await handle.result() == final.output
        entries = [v async for v in handle.read_stream("graph:results")]
    checkpoints = [e for e in entries if e[0] == "superstep"]
    assert [c[1] for c in checkpoints] == [0, 1, 2, 3, 4]
    assert checkpoints[2][3] == {"messages": ["a0", "b", "a1"], "count": 2}


async def test_reducers_merge_in_node_name_order() -> None:
    trace = af.Key("trace", "", reducer=lambda cur, upd: cur + upd)  # not commutative
    g = af.Graph("t-reduce", keys=[messages, total, trace])

    @g.node(to=["z", "y", "x"])
    async def fan(ctx: af.NodeContext, view: af.View) -> af.Command:
        return af.Command().to("z", "y", "x")

    for name in ("x", "y", "z"):

        async def worker(ctx: af.NodeContext, view: af.View, name: str = name) -> af.Command:
            await anyio.sleep(0.01 if name == "x" else 0)  # x finishes last
            return af.Command().append(messages, name).set(total, 1).set(trace, name)

        g.node(worker, name=name)
    g.start("fan")
    compiled = g.build()
    async with af.Runtime() as rt:
        out = await rt.run(compiled, {"total": 10})
    assert out == {"messages": ["x", "y", "z"], "total": 13, "trace": "xyz"}


async def test_nodes_of_a_superstep_run_concurrently() -> None:
    g = af.Graph("t-concurrent", keys=[messages])
    arrived = 0
    all_there = anyio.Event()

    @g.node(to=["p", "q", "r"])
    async def go(ctx: af.NodeContext, view: af.View) -> af.Command:
        return af.Command().to("p", "q", "r")

    for name in ("p", "q", "r"):

        async def meet(ctx: af.NodeContext, view: af.View, name: str = name) -> af.Command:
            nonlocal arrived
            arrived += 1
            if arrived == 3:
                all_there.set()
            await all_there.wait()  # deadlocks unless all three run at once
            return af.Command().append(messages, name)

        g.node(meet, name=name)
    g.start("go")
    compiled = g.build()
    async with af.Runtime() as rt:
        with anyio.fail_after(5):
            assert await rt.run(compiled) == {"messages": ["p", "q", "r"]}


async def test_two_replace_writes_in_one_superstep_raise_graph_error() -> None:
    g = af.Graph("t-conflict", keys=[count])

    @g.node(to=["u", "w"])
    async def split(ctx: af.NodeContext, view: af.View) -> af.Command:
        return af.Command().to("u", "w")

    async def setter(ctx: af.NodeContext, view: af.View) -> af.Command:
        return af.Command().set(count, 1)

    g.node(setter, name="u")
    g.node(setter, name="w")
    g.start("split")
    compiled = g.build()
    async with af.Runtime() as rt:
        with pytest.raises(af.GraphError, match=r"nodes 'u' and 'w' both set key 'count'"):
            async for _ in compiled.stream(rt):
                pass
        handle = await rt.start(compiled)
        with pytest.raises(af.RunFailed) as info:
            await handle.result()
        assert info.value.error_type == "actorflow.GraphError"


async def test_max_supersteps_fails_a_runaway_loop() -> None:
    g = af.Graph("t-runaway", keys=[count], max_supersteps=7)

    @g.node(to=["spin"])
    async def spin(ctx: af.NodeContext, view: af.View) -> af.Command:
        return af.Command().set(count, view[count] + 1).to("spin")

    g.start("spin")
    compiled = g.build()
    async with af.Runtime() as rt:
        seen: list[af.ExecutionResult] = []

        async def consume() -> None:
            async for r in compiled.stream(rt):
                seen.append(r)

        with pytest.raises(af.GraphError, match="max_supersteps=7"):
            await consume()
    assert [r.superstep for r in seen] == list(range(7))


async def test_node_errors_bad_routes_and_bad_updates() -> None:
    g = af.Graph("t-bad", keys=[count])

    @g.node(to=[af.END])
    async def start(ctx: af.NodeContext, view: af.View) -> af.Command:
        return af.Command().to("elsewhere")

    g.start("start")
    compiled = g.build()
    async with af.Runtime() as rt:
        with pytest.raises(af.GraphError, match="routed to 'elsewhere'"):
            await af.last(compiled.stream(rt))

    g2 = af.Graph("t-bad2", keys=[count])

    @g2.node
    async def app(ctx: af.NodeContext, view: af.View) -> af.Command:
        return af.Command().append(count, 1)

    g2.start("app")
    compiled2 = g2.build()
    async with af.Runtime() as rt:
        with pytest.raises(af.GraphError, match=r"not an af\.ListKey"):
            await af.last(compiled2.stream(rt))

    g3 = af.Graph("t-bad3", keys=[count])

    @g3.node
    async def boom(ctx: af.NodeContext, view: af.View) -> None:
        raise RuntimeError("kaput")

    g3.start("boom")
    compiled3 = g3.build()
    async with af.Runtime() as rt:
        with pytest.raises(af.RunFailed, match="kaput"):
            await af.last(compiled3.stream(rt))


# -- cancellation ------------------------------------------------------------------------

forever = af.Graph("t-forever", keys=[count], max_supersteps=10_000)


@forever.node(to=["tick"])
async def tick(ctx: af.NodeContext, view: af.View) -> af.Command:
    ctx.emit(view[count])
    await anyio.sleep(0.001)
    return af.Command().set(count, view[count] + 1).to("tick")


forever.start("tick")
ticking = forever.build()


async def test_breaking_out_of_the_loop_cancels_the_run() -> None:
    async with af.Runtime() as rt:
        async for r in ticking.stream(rt, run_id="brk"):
            if r.superstep == 3:
                break
        with anyio.fail_after(5), pytest.raises(af.RunCancelled):
            await rt.handle("brk").result()


async def test_aclose_and_async_with_cancel_the_run() -> None:
    async with af.Runtime() as rt:
        async with ticking.stream(rt, run_id="ctx") as results:
            async for r in results:
                if r.superstep == 2:
                    break
        assert await rt.handle("ctx").status() is af.RunStatus.CANCELLED


async def test_cancelling_the_consumer_cancels_the_run() -> None:
    async with af.Runtime() as rt:
        results = ticking.stream(rt, run_id="cc")
        with anyio.move_on_after(0.05):
            async for _ in results:
                pass
        with anyio.fail_after(5), pytest.raises(af.RunCancelled):
            await rt.handle("cc").result()


# -- human in the loop --------------------------------------------------------------------

decision = af.Key("decision", "")
approval = af.Graph("t-approval", keys=[messages, decision])
approval_runs: list[str] = []


@approval.node(to=[af.END])
async def review(ctx: af.NodeContext, view: af.View) -> af.Command:
    approval_runs.append("before")
    ctx.emit("asking")
    answer = await ctx.recv("approval")
    approval_runs.append(f"got {answer}")
    ctx.emit("thanks")
    return af.Command().set(decision, answer).append(messages, "reviewed").to(af.END)


approval.start("review")
approving = approval.build()


async def test_a_node_waits_durably_for_a_human_across_a_restart() -> None:
    approval_runs.clear()
    journal = af.MemoryJournal()
    async with af.Runtime(journal) as rt:
        handle = await rt.start(approving, None, run_id="hitl")
        await anyio.wait_all_tasks_blocked()
        assert await handle.status() is af.RunStatus.RUNNING
    assert approval_runs == ["before"]
    async with af.Runtime(journal) as rt:
        await rt.send("hitl", "yes", topic="approval")
        results = [r async for r in approving.stream(rt, run_id="hitl")]
    # The restart did not re-run the waiting node; the reply re-ran it from its start.
    assert approval_runs == ["before", "before", "got yes"]
    assert [(r.node, r.updates) for r in results] == [
        ("review", "asking"),
        ("review", "thanks"),  # "asking" is not emitted again by the rerun
        ("review", {"decision": "yes", "messages": ["reviewed"]}),
        (af.END, {}),
    ]
    assert results[-1].output == {"messages": ["reviewed"], "decision": "yes"}


async def test_several_recvs_in_one_node() -> None:
    g = af.Graph("t-two-recvs", keys=[messages])

    @g.node
    async def ask(ctx: af.NodeContext, view: af.View) -> af.Command:
        first = await ctx.recv("q")
        second = await ctx.recv("q")
        return af.Command().append(messages, first, second)

    g.start("ask")
    compiled = g.build()
    async with af.Runtime() as rt:
        handle = await rt.start(compiled)
        await handle.send(1, topic="q")
        await handle.send(2, topic="q")
        assert await handle.result() == {"messages": [1, 2]}


# -- hypothesis: the runtime agrees with a sequential BSP interpreter ---------------------


class Spec:
    """A random graph: per node, its declared targets, static edges and behaviour."""

    def __init__(self, n: int, to: list[list[int]], edges: list[list[int]], plans: list[Any]):
        self.n, self.to, self.edges, self.plans = n, to, edges, plans


def node_name(i: int) -> str:
    return f"n{i}"


def target_name(t: int) -> str:
    return af.END if t < 0 else node_name(t)


@st.composite
def specs(draw: st.DrawFn) -> Spec:
    n = draw(st.integers(1, 5))
    to: list[list[int]] = [[] for _ in range(n)]
    edges: list[list[int]] = [[] for _ in range(n)]
    for k in range(1, n):  # a spanning tree keeps every node reachable
        parent = draw(st.integers(0, k - 1))
        (to if draw(st.booleans()) else edges)[parent].append(k)
    for i in range(n):  # and random extra routes, cycles and END
        to[i] += draw(st.lists(st.integers(-1, n - 1), max_size=3))
        to[i] = sorted(set(to[i]))
        if draw(st.integers(0, 3)) == 0:
            edges[i] = sorted({*edges[i], draw(st.integers(0, n - 1))})
    plans = [
        {
            "sets_last": draw(st.booleans()),
            "add": draw(st.integers(0, 5)),
            "choices": draw(
                st.lists(st.lists(st.sampled_from(to[i]), max_size=2), min_size=1, max_size=3)
            )
            if to[i]
            else [[]],
        }
        for i in range(n)
    ]
    return Spec(n, to, edges, plans)


Behaviour = Callable[[dict[str, Any], int], tuple[dict[str, Any], list[str]]]


def behaviour(spec: Spec, i: int) -> Behaviour:
    plan = spec.plans[i]

    def act(state: dict[str, Any], superstep: int) -> tuple[dict[str, Any], list[str]]:
        updates: dict[str, Any] = {
            "log": [f"{i}@{superstep}"],
            "total": plan["add"] + len(state["log"]),
            "order": i,
        }
        if plan["sets_last"]:
            updates["last"] = i
        choices = plan["choices"]
        targets = [target_name(t) for t in choices[(superstep + len(state["log"])) % len(choices)]]
        return updates, targets

    return act


def order_reducer(current: int, update: int) -> int:
    return (current * 7 + update + 1) % 1_000_003  # order-sensitive


def reference(spec: Spec, max_supersteps: int) -> tuple[str, Any]:
    """Sequential BSP semantics: run active nodes in name order on the superstep's state."""
    state: dict[str, Any] = {"log": [], "total": 0, "order": 0, "last": None}
    active = [node_name(0)]
    superstep = 0
    while active:
        if superstep >= max_supersteps:
            return ("error", "max_supersteps")
        new = dict(state)
        writers: set[str] = set()
        nexts: set[str] = set()
        for name in active:
            i = int(name[1:])
            updates, targets = behaviour(spec, i)(state, superstep)
            new["log"] = new["log"] + updates["log"]
            new["total"] = new["total"] + updates["total"]
            new["order"] = order_reducer(new["order"], updates["order"])
            if "last" in updates:
                if writers:
                    return ("error", "both set key 'last'")
                writers.add(name)
                new["last"] = updates["last"]
            nexts.update(targets)
            nexts.update(node_name(t) for t in spec.edges[i])
        nexts.discard(af.END)
        state, active, superstep = new, sorted(nexts, key=lambda s: s), superstep + 1
    return ("ok", state)


def build_graph(spec: Spec, max_supersteps: int) -> af.CompiledGraph:
    g = af.Graph(
        "hyp",
        keys=[
            af.ListKey("log"),
            af.Key("total", 0, reducer=lambda a, b: a + b),
            af.Key("order", 0, reducer=order_reducer),
            af.Key("last", None),
        ],
        max_supersteps=max_supersteps,
    )
    for i in range(spec.n):
        act = behaviour(spec, i)

        async def node(ctx: af.NodeContext, view: af.View, act: Any = act) -> af.Command:
            updates, targets = act(dict(view), view.superstep)
            ctx.emit(view.superstep)
            cmd = af.Command().append("log", *updates["log"])
            for key in ("total", "order", "last"):
                if key in updates:
                    cmd.set(key, updates[key])
            return cmd.to(*targets)

        g.node(node, name=node_name(i), to=[target_name(t) for t in spec.to[i]])
        for t in spec.edges[i]:
            g.edge(node_name(i), node_name(t))
    g.start(node_name(0))
    return g.build()


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@given(spec=specs(), max_supersteps=st.integers(1, 8))
def test_random_graphs_agree_with_a_sequential_reference(
    spec: Spec, max_supersteps: int, backend: str
) -> None:
    expected = reference(spec, max_supersteps)
    compiled = build_graph(spec, max_supersteps)

    async def main() -> tuple[str, Any, list[af.ExecutionResult]]:
        results: list[af.ExecutionResult] = []
        async with af.Runtime() as rt:
            try:
                async for r in compiled.stream(rt):
                    results.append(r)
            except af.GraphError as exc:
                return ("error", str(exc), results)
        return ("ok", results[-1].output, results)

    kind, value, results = anyio.run(main, backend=backend)
    assert kind == expected[0], (value, expected)
    if kind == "ok":
        assert value == expected[1]
        assert results[-1].node == af.END
    else:
        assert expected[1] in value
    # In order, none lost: per superstep, each active node's emit then its completion.
    steps = [r.superstep for r in results if r.node != af.END]
    assert steps == sorted(steps)
    failed_at = steps[-1] if kind == "error" and steps else None  # its barrier raised
    for s in set(steps) - {failed_at}:
        in_step = [r for r in results if r.superstep == s and r.node != af.END]
        emits = [r.node for r in in_step if isinstance(r.updates, int)]
        done = [r.node for r in in_step if isinstance(r.updates, dict)]
        assert sorted(emits) == done  # one emit per completion; completions in name order
        assert all(isinstance(r.updates, dict) for r in in_step[len(emits) :])


# -- nodes stream like steps --------------------------------------------------------------


async def test_nodes_put_and_write_streams_like_steps(tmp_path: Any) -> None:
    tokens = af.ListKey("tokens")
    g = af.Graph("streamer", keys=[tokens])

    @g.node(to=["b"])
    async def a(ctx: af.NodeContext, view: af.View) -> af.Command:
        for word in ("one", "two"):
            await ctx.put_stream(word)
            await ctx.write_stream("words", word)
        return af.Command().append(tokens, "a").to("b")

    @g.node(to=[af.END])
    async def b(ctx: af.NodeContext, view: af.View) -> af.Command:
        await ctx.put_stream("three")
        await ctx.write_stream("words", "three")
        return af.Command().append(tokens, "b").to(af.END)

    g.start("a")
    compiled = g.build()
    async with af.Runtime(tmp_path / "j.db") as rt:
        async with rt.subscribe("stream.r1.>") as sub:
            final = await af.last(compiled.stream(rt, None, run_id="r1"))
            live = []
            async for msg in sub:
                live.append((msg.step_id, msg.seq, msg.data))
                if len(live) == 3:
                    break
        assert final.output == {"tokens": ["a", "b"]}
        # Each node runs as the step <graph>-<node>: stream.r1.streamer-a, ...
        assert live == [
            ("streamer-a", 1, "one"),
            ("streamer-a", 2, "two"),
            ("streamer-b", 1, "three"),
        ]
        durable = [e async for e in rt.read_stream_entries("r1", "words")]
    assert [(e.value, e.step_id) for e in durable] == [
        ("one", "streamer-a"),
        ("two", "streamer-a"),
        ("three", "streamer-b"),
    ]
    assert [e.offset for e in durable] == [0, 1, 2]
