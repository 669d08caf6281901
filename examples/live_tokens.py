"""Live streams: simulated LLM tokens to a console subscriber, and a slow one that drops.

    python examples/live_tokens.py

Two runs generate tokens at once. A console subscriber follows every run's
`generate` step with a wildcard subject; a deliberately slow subscriber with a
4-message buffer and the default drop_oldest policy shows how losses are
reported (`dropped_before`, `Subscription.dropped`) instead of slowing the
publisher. Nothing here is stored: use write_stream for output that must
survive a crash.
"""

from __future__ import annotations

import anyio

import actorflow as af

TOKENS = ["the", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog"]


@af.step
async def generate(ctx: af.StepContext, topic: str) -> int:
    for token in TOKENS:
        await ctx.put_stream(f"{topic}:{token}")
        await anyio.sleep(0.005)
    return len(TOKENS)


@af.workflow
async def story(ctx: af.WorkflowContext, topic: str) -> int:
    return await ctx.step(generate, topic)


async def main() -> None:
    async with af.Runtime() as rt:
        console = rt.subscribe("stream.*.generate")
        slow = rt.subscribe("stream.>", buffer=4, overflow="drop_oldest")
        async with console, slow:
            runs = [await rt.start(story, t, run_id=t) for t in ("cats", "dogs")]
            per_run: dict[str, list[str]] = {"cats": [], "dogs": []}
            for _ in range(2 * len(TOKENS)):
                message = await console.__anext__()
                per_run[message.run_id].append(str(message.data).split(":")[1])
                print(f"[{message.subject} #{message.seq}] {message.data}")
            for handle in runs:
                await handle.result()
            slow_seen = []
            with anyio.move_on_after(0.1):
                async for message in slow:  # reads only now: most of it was dropped
                    slow_seen.append((message.seq, message.dropped_before))
            print(f"console subscriber: {sum(map(len, per_run.values()))} tokens, in order")
            print(f"slow subscriber: kept {len(slow_seen)}, dropped {slow.dropped}")
            assert per_run == {"cats": TOKENS, "dogs": TOKENS}
            assert len(slow_seen) + slow.dropped == 2 * len(TOKENS)


if __name__ == "__main__":
    anyio.run(main)
