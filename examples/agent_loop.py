"""An agent loop as a graph: stream tokens, call a tool, loop, ask a human before answering.

    python examples/agent_loop.py [journal.db]

The "LLM" is a deterministic fake: it first asks for the weather tool, then
answers with what the tool said. The assistant node emits every token as it is
"generated" (``ctx.emit``), the tools node runs the tool, and the approve node
waits durably for a human (``await ctx.recv("approval")``) before the answer
goes out. Here the human is the main task, which sends the approval with
``handle.send`` when the graph asks for it. Each superstep is checkpointed in
the journal, so killing the process mid-loop and reopening the journal resumes
after the last finished superstep.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import anyio

import actorflow as af

messages = af.ListKey("messages")
tool_calls = af.Key("tool_calls", 0)
approved = af.Key("approved", None)

g = af.Graph("agent", keys=[messages, tool_calls, approved])


def fake_llm(history: list[dict[str, str]]) -> dict[str, str]:
    """A deterministic stand-in for a model: ask for the tool once, then answer."""
    tool_results = [m["content"] for m in history if m["role"] == "tool"]
    if not tool_results:
        return {"role": "assistant", "content": "Let me check the weather.", "tool": "weather"}
    return {"role": "assistant", "content": f"The forecast says: {tool_results[-1]}."}


@g.node(to=["tools", "approve"])
async def assistant(ctx: af.NodeContext, view: af.View) -> af.Command:
    reply = fake_llm(view[messages])
    for token in reply["content"].split(" "):
        ctx.emit({"type": "token", "content": token + " "})
        await anyio.sleep(0.005)
    wants_tool = "tool" in reply
    return af.Command().append(messages, reply).to("tools" if wants_tool else "approve")


@g.node
async def tools(ctx: af.NodeContext, view: af.View) -> af.Command:
    call = view[messages][-1]["tool"]
    result = {"weather": "sunny, 21 degrees"}[call]
    return (
        af.Command()
        .append(messages, {"role": "tool", "content": result})
        .set(tool_calls, view[tool_calls] + 1)
    )


@g.node(to=[af.END])
async def approve(ctx: af.NodeContext, view: af.View) -> af.Command:
    ctx.emit({"type": "approval_needed", "answer": view[messages][-1]["content"]})
    decision = await ctx.recv("approval")
    return af.Command().set(approved, decision).to(af.END)


g.edge("tools", "assistant")
g.start("assistant")
agent = g.build()


async def main(db: Path) -> None:
    print(agent.to_mermaid())
    question = {"role": "user", "content": "What's the weather tomorrow?"}
    async with af.Runtime(db) as rt:
        results = agent.stream(rt, {"messages": [question]}, run_id="agent-demo")
        final = None
        async for r in results:
            if r.node == af.END:
                final = r
            elif isinstance(r.updates, dict) and r.updates.get("type") == "token":
                print(r.updates["content"], end="", flush=True)
            elif isinstance(r.updates, dict) and r.updates.get("type") == "approval_needed":
                print(f"\n[human] approving: {r.updates['answer']!r}")
                assert results.handle is not None
                await results.handle.send("yes", topic="approval")
            else:
                print(f"\n[{r.node} finished superstep {r.superstep}]")
        assert final is not None
        state = final.output
        print(f"\nfinal after {final.superstep} supersteps: {len(state['messages'])} messages")
        print(f"agent answered: {state['messages'][-1]['content']} (approved={state['approved']})")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tmp) / "agent.db"
        anyio.run(main, path)
