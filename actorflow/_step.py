"""A step call as an actor: its attempts, retries, timeouts and heartbeats.

A :class:`StepActor` runs in the task of the body that awaits it, inside the
run's task group, so cancelling a run cancels its steps and nothing outlives
it; a task per step would cap a run at the machine's task spawn rate (see
benchmarks/bench_runtime.py).
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from ._codec import encode_value, error_info
from ._context import AttemptState, StepContext, ThreadStepContext
from ._exceptions import StepFailed
from .records import StepAttemptFailed, StepCompleted, StepGaveUp, StepStarted

if TYPE_CHECKING:
    from ._history import StepRecord
    from ._registry import Step
    from ._run import RunActor

__all__ = ("StepActor",)

_MISSING: Any = object()


@attrs.define(eq=False)
class StepActor:
    """One step call: its attempts, retries, timeouts and heartbeats."""

    run: RunActor
    step: Step[Any, Any]
    input: Any
    position: int
    step_id: str
    record: StepRecord | None
    wait_commit: bool = True

    async def run_attempts(self) -> Any:
        """Run attempts until one succeeds or retries are exhausted; return the output.

        Raises:
            StepFailed: the retries are exhausted.
            EncodeError: the output is not msgspec-encodable.
        """
        step, run, rec = self.step, self.run, self.record
        clock, hooks = run.clock, run.hooks
        attempt = rec.last_attempt if rec else 0
        failures = rec.failures if rec else 0
        checkpoint = rec.checkpoint if rec else None
        while True:
            attempt += 1
            run.append(
                StepStarted(
                    run.run_id, self.position, self.step_id, step.name, attempt, clock.time()
                )
            )
            if hooks.step_started is not None:
                hooks.step_started(run.run_id, self.step_id, attempt)
            state = AttemptState(run, self.step_id, self.position, attempt, checkpoint)
            if step.heartbeat_timeout is not None:
                state.last_heartbeat = clock.current_time()
            inner = StepContext(state)
            try:
                output = await self._attempt(
                    inner if step.is_async else ThreadStepContext(inner), state
                )
            except Exception as exc:
                failures += 1
                info = error_info(exc)
                run.append(
                    StepAttemptFailed(run.run_id, self.position, attempt, info, clock.time())
                )
                gave_up = failures > step.retries
                delay = None if gave_up else step.backoff.delay(failures)
                if hooks.step_failed is not None:
                    hooks.step_failed(run.run_id, self.step_id, attempt, exc, delay)
                if delay is None:
                    await run.commit(
                        run.append(
                            StepGaveUp(run.run_id, self.position, attempt, info, clock.time())
                        )
                    )
                    raise StepFailed(self.step_id, attempt, info.type, info.message) from exc
                checkpoint = state.checkpoint
                await clock.sleep(delay)
                continue
            data = encode_value(output, f"the output of step {self.step_id!r}")
            ticket = run.append(
                StepCompleted(run.run_id, self.position, attempt, data, clock.time())
            )
            if hooks.step_finished is not None:
                hooks.step_finished(run.run_id, self.step_id, attempt)
            if self.wait_commit:
                await run.commit(ticket)
            return output

    async def _attempt(self, ctx: StepContext | ThreadStepContext, state: AttemptState) -> Any:
        step = self.step
        try:
            with self._deadline():
                if step.heartbeat_timeout is None:
                    return await self._call(ctx)
                result, error = _MISSING, None
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._watch_heartbeats, state, tg.cancel_scope)
                    try:
                        result = await self._call(ctx)
                    except Exception as exc:
                        error = exc
                    tg.cancel_scope.cancel()
                if error is not None:
                    raise error
                if result is _MISSING:
                    raise TimeoutError(
                        f"step {self.step_id!r} sent no heartbeat for {step.heartbeat_timeout} s; "
                        "call ctx.heartbeat() more often or raise heartbeat_timeout"
                    )
                return result
        finally:
            state.live = False

    def _deadline(self) -> Any:
        timeout = self.step.timeout
        if timeout is None:
            return nullcontext()
        return anyio.fail_after(timeout)

    async def _call(self, ctx: StepContext | ThreadStepContext) -> Any:
        step = self.step
        if step.is_async:
            return await step.fn(ctx, self.input)
        return await anyio.to_thread.run_sync(step.fn, ctx, self.input, abandon_on_cancel=True)

    async def _watch_heartbeats(self, state: AttemptState, scope: anyio.CancelScope) -> None:
        timeout = self.step.heartbeat_timeout
        assert timeout is not None
        clock = self.run.clock
        while True:
            deadline = state.last_heartbeat + timeout
            now = clock.current_time()
            if now >= deadline:
                hook = self.run.hooks.heartbeat_timeout
                if hook is not None:
                    hook(self.run.run_id, self.step_id, state.attempt, timeout)
                scope.cancel()
                return
            await clock.sleep(deadline - now)
